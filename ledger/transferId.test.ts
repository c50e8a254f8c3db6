import { describe, expect, it } from "vitest";
import { assetChainOf, assetIdOf, assetTokenOf, isUuid, transferId } from "./transferId.js";

describe("transferId", () => {
  it("is a version 5, RFC variant UUID, stable for a name", () => {
    const id = transferId("deposit:31337:0xabc:log:3");
    expect(isUuid(id)).toBe(true);
    expect(id[14]).toBe("5");
    expect(["8", "9", "a", "b"]).toContain(id[19]);
    expect(transferId("deposit:31337:0xabc:log:3")).toBe(id);
    expect(transferId("deposit:31337:0xabc:log:4")).not.toBe(id);
  });

  it("matches the RFC 9562 v5 test vector", () => {
    // RFC 9562 appendix A.4: v5 of "www.example.com" in the DNS namespace.
    expect(transferId("www.example.com", "6ba7b810-9dad-11d1-80b4-00c04fd430c8")).toBe(
      "2ed6657d-e927-568b-95e1-2665a8aea6a2",
    );
  });
});

describe("asset ids", () => {
  it("split back into the chain id and the token they were made of", () => {
    const id = assetIdOf(42161, "0xAF88d065e77c8cC2239327C5EDb3A432268e5831");
    expect(id).toBe("42161:0xaf88d065e77c8cc2239327c5edb3a432268e5831");
    expect(assetChainOf(id)).toBe("42161");
    expect(assetTokenOf(id)).toBe("0xaf88d065e77c8cc2239327c5edb3a432268e5831");
  });
});
