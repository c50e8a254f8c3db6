import {
  type Address,
  encodeAbiParameters,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  multicall3Abi,
  toFunctionSelector,
} from "viem";
import { describe, expect, it } from "vitest";
import { chainSchema } from "../../chains/index.js";
import { loadConfig } from "../../foundation/config.js";
import { ConfigError } from "../../foundation/errors.js";
import { minimalChain } from "../../ops/testing/configFile.js";
import {
  BALANCE_LOOP_MAX,
  BALANCE_OF,
  balanceLoopCode,
  createRateLimiter,
  decodeBalanceResults,
  encodeBalanceReads,
  GET_ETH_BALANCE,
  tokenBalanceLoopCode,
} from "./onchain.js";

const chain = (recon: unknown) => ({ ...minimalChain, recon });

const load = (recon: unknown) =>
  loadConfig(chainSchema, { CUSTODY_CONFIG_JSON: JSON.stringify({ chains: [chain(recon)] }) });

describe("recon balance-read config", () => {
  it("defaults every field, and takes valid ones", () => {
    expect(load({}).chains[0]!.recon).toEqual({
      rotation: 200,
      batchSize: 500,
      requestsPerSecond: 20,
      inFlight: 4,
      balanceLoop: true,
    });
    const mc = "0xcA11bde05977b3631167028862bE2a173976CA11";
    expect(
      load({
        rotation: 0,
        batchSize: 1,
        requestsPerSecond: 0.5,
        inFlight: 1,
        multicall3: mc,
        balanceLoop: false,
      }).chains[0]!.recon,
    ).toEqual({
      rotation: 0,
      batchSize: 1,
      requestsPerSecond: 0.5,
      inFlight: 1,
      multicall3: mc,
      balanceLoop: false,
    });
  });

  it("refuses bad values, naming every bad field", () => {
    let error: unknown;
    try {
      load({
        rotation: 1.5,
        batchSize: 0,
        requestsPerSecond: -1,
        inFlight: 0,
        multicall3: "0x12",
        extra: 1,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const fields = (error as ConfigError).issues.map((i) => i.field).sort();
    expect(fields).toEqual(
      expect.arrayContaining([
        "env:CUSTODY_CONFIG_JSON.chains.0.recon", // the unknown key
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.batchSize",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.inFlight",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.multicall3",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.requestsPerSecond",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.rotation",
      ]),
    );
    expect((error as Error).message).toMatch(/chains\.0\.recon\.batchSize/);
  });
});

describe("createRateLimiter", () => {
  it("starts at most `rps` requests a second: the 5th of 5 at 10/s waits >= 400 ms", async () => {
    const wait = createRateLimiter(10);
    const t0 = performance.now();
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      await wait();
      starts.push(performance.now() - t0);
    }
    expect(starts[0]!).toBeLessThan(400);
    expect(starts[4]!).toBeGreaterThanOrEqual(399);
  });
});

describe("aggregate3 balance reads, encoded by hand", () => {
  const MC = "0xcA11bde05977b3631167028862bE2a173976CA11";
  const TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
  const address = (i: number) => `0x${(i * 7919 + 1).toString(16).padStart(40, "0")}`;

  it("names the same functions as viem's ABIs", () => {
    expect(GET_ETH_BALANCE).toBe(toFunctionSelector("getEthBalance(address)").slice(2));
    expect(BALANCE_OF).toBe(toFunctionSelector("balanceOf(address)").slice(2));
  });

  it("encodes exactly what viem encodes, for 0, 1 and 250 mixed calls", () => {
    for (const n of [0, 1, 250]) {
      const calls = Array.from({ length: n }, (_, i) =>
        i % 3 === 2
          ? { target: TOKEN, selector: BALANCE_OF, address: address(i) }
          : { target: MC, selector: GET_ETH_BALANCE, address: address(i) },
      );
      const viem = encodeFunctionData({
        abi: multicall3Abi,
        functionName: "aggregate3",
        args: [
          calls.map((c) => ({
            target: c.target as Address,
            allowFailure: false,
            callData:
              c.selector === BALANCE_OF
                ? encodeFunctionData({
                    abi: erc20Abi,
                    functionName: "balanceOf",
                    args: [c.address as Address],
                  })
                : encodeFunctionData({
                    abi: multicall3Abi,
                    functionName: "getEthBalance",
                    args: [c.address as Address],
                  }),
          })),
        ],
      });
      expect(encodeBalanceReads(calls)).toBe(viem.toLowerCase());
    }
    expect(() =>
      encodeBalanceReads([{ target: MC, selector: GET_ETH_BALANCE, address: "0x12" }]),
    ).toThrow(/bad balance read/);
  });

  const results = (r: { success: boolean; returnData: Hex }[]) =>
    encodeAbiParameters(
      [
        {
          type: "tuple[]",
          components: [
            { type: "bool", name: "success" },
            { type: "bytes", name: "returnData" },
          ],
        },
      ],
      [r],
    );

  it("decodes what viem encodes: uint256 values up to 2^256 - 1; no or short return data is unknown (null), never 0", () => {
    const values = [0n, 1n, 10n ** 18n + 7n, 2n ** 256n - 1n];
    const encoded = results([
      ...values.map((v) => ({
        success: true,
        returnData: `0x${v.toString(16).padStart(64, "0")}` as Hex,
      })),
      { success: true, returnData: "0x" },
      { success: true, returnData: "0x05" },
    ]);
    expect(decodeBalanceResults(encoded, 6)).toEqual([...values, null, null]);
  });

  it("refuses a result of the wrong length, a failed call and a truncated result", () => {
    const one = results([{ success: true, returnData: `0x${"00".repeat(31)}05` }]);
    expect(decodeBalanceResults(one, 1)).toEqual([5n]);
    expect(() => decodeBalanceResults(one, 2)).toThrow(/1 results for 2 calls/);
    const failed = results([{ success: false, returnData: "0x" }]);
    expect(() => decodeBalanceResults(failed, 1)).toThrow(/call 0 failed/);
    expect(() => decodeBalanceResults(one.slice(0, one.length - 64) as Hex, 1)).toThrow(
      /malformed/,
    );
  });
});

describe("balance loop creation code", () => {
  it("is the 35-byte loop with the addresses appended as 32-byte words", () => {
    const a = "0x00000000000000000000000000000000000000aa";
    const b = "0xAbCdEf0000000000000000000000000000000001";
    const code = balanceLoopCode([a, b]);
    // PUSH2 64, DUP1, PUSH1 35, PUSH1 0, CODECOPY, PUSH1 0, then the loop from offset 11.
    expect(code.slice(0, 24)).toBe("0x6100408060236000396000");
    expect(code.slice(24, 72)).toBe("5b81811015601e578051318152602001600b565b506000f3");
    expect((code.length - 2) / 2).toBe(35 + 2 * 32);
    expect(code.slice(72)).toBe(
      `${"0".repeat(24)}${a.slice(2)}${"0".repeat(24)}${b.slice(2).toLowerCase()}`,
    );
    // The loop's jumps land on its JUMPDESTs (offsets 11 and 30).
    const bytes = code.slice(2);
    expect(bytes.slice(22, 24)).toBe("5b");
    expect(bytes.slice(60, 62)).toBe("5b");
  });

  it("reads 1 to 768 addresses a call (EIP-170), and refuses a bad address", () => {
    const addr = (i: number) => `0x${i.toString(16).padStart(40, "0")}`;
    const max = balanceLoopCode(Array.from({ length: BALANCE_LOOP_MAX }, (_, i) => addr(i + 1)));
    expect(max.slice(0, 8)).toBe("0x616000"); // 768 × 32 = 0x6000 bytes returned
    expect(() => balanceLoopCode([])).toThrow(/1 to 768/);
    expect(() =>
      balanceLoopCode(Array.from({ length: BALANCE_LOOP_MAX + 1 }, (_, i) => addr(i + 1))),
    ).toThrow(/1 to 768/);
    expect(() => balanceLoopCode(["0x12"])).toThrow(/bad balance read address/);
  });
});

describe("token balance loop creation code", () => {
  const token = "0x00000000000000000000000000000000000000Cc";
  it("is the 92-byte loop calling balanceOf on the token, with the addresses appended", () => {
    const a = "0x00000000000000000000000000000000000000aa";
    const b = "0xAbCdEf0000000000000000000000000000000001";
    const hex = tokenBalanceLoopCode(token, [a, b]).slice(2);
    const at = (offset: number, bytes = 1) => hex.slice(offset * 2, (offset + bytes) * 2);
    expect(hex.length / 2).toBe(92 + 2 * 32);
    // PUSH2 64, DUP1, PUSH1 92 (the words' offset), PUSH1 0, CODECOPY, PUSH1 0.
    expect(at(0, 11)).toBe("6100408060" + "5c" + "6000396000");
    // The jumps (to 87, 82, 82, 11) land on JUMPDESTs.
    for (const [push, dest] of [
      [16, 87],
      [66, 82],
      [73, 82],
      [79, 11],
    ] as const) {
      expect(at(push)).toBe("60");
      expect(Number.parseInt(at(push + 1), 16)).toBe(dest);
      expect(at(dest)).toBe("5b");
    }
    expect(at(19, 5)).toBe(`63${BALANCE_OF}`); // PUSH4 balanceOf
    expect(at(42, 21)).toBe(`73${token.slice(2).toLowerCase()}`); // PUSH20 token
    expect(at(63, 2)).toBe("5afa"); // GAS STATICCALL
    expect(at(82, 10)).toBe("5b600080fd5b506000f3"); // REVERT; POP, RETURN
    expect(hex.slice(184)).toBe(
      `${"0".repeat(24)}${a.slice(2)}${"0".repeat(24)}${b.slice(2).toLowerCase()}`,
    );
  });

  it("reads 1 to 768 addresses a call (EIP-170), and refuses a bad token or address", () => {
    const addr = (i: number) => `0x${i.toString(16).padStart(40, "0")}`;
    const max = tokenBalanceLoopCode(
      token,
      Array.from({ length: BALANCE_LOOP_MAX }, (_, i) => addr(i + 1)),
    );
    expect(max.slice(0, 8)).toBe("0x616000");
    expect(() => tokenBalanceLoopCode(token, [])).toThrow(/1 to 768/);
    expect(() =>
      tokenBalanceLoopCode(
        token,
        Array.from({ length: BALANCE_LOOP_MAX + 1 }, (_, i) => addr(i + 1)),
      ),
    ).toThrow(/1 to 768/);
    expect(() => tokenBalanceLoopCode(token, ["0x12"])).toThrow(/bad balance read address/);
    expect(() => tokenBalanceLoopCode("0x12", [addr(1)])).toThrow(/bad balance read token/);
  });
});
