import { describe, expect, it } from "vitest";
import { RpcResponseError, RpcUnavailableError } from "./errors.js";
import { isLogRangeLimit } from "./evm/createEvmAdapter.js";
import { endpointLabel } from "./rpc.js";

describe("endpointLabel", () => {
  it("keeps scheme, host and port and drops the path (API keys live there)", () => {
    expect(endpointLabel("https://eth-mainnet.example.com/v2/SECRETKEY")).toBe(
      "https://eth-mainnet.example.com",
    );
    expect(endpointLabel("http://127.0.0.1:8545")).toBe("http://127.0.0.1:8545");
    expect(endpointLabel("not a url")).toBe("invalid-url");
  });
});

describe("isLogRangeLimit", () => {
  it("recognises provider range limits and timeouts, not other node errors", () => {
    expect(
      isLogRangeLimit(
        new RpcResponseError("eth_getLogs", -32005, "query returned more than 10000 results"),
      ),
    ).toBe(true);
    expect(
      isLogRangeLimit(new RpcResponseError("eth_getLogs", -32000, "block range is too wide")),
    ).toBe(true);
    expect(
      isLogRangeLimit(
        new RpcResponseError("eth_getLogs", -32602, "invalid argument 0: hex string"),
      ),
    ).toBe(false);
    expect(isLogRangeLimit(new RpcUnavailableError("eth_getLogs", 1, new Error("timed out")))).toBe(
      true,
    );
    expect(isLogRangeLimit(new Error("boom"))).toBe(false);
  });
});
