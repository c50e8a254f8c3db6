import { describe, expect, it } from "vitest";
import {
  framesFromGeth,
  framesFromParity,
  type GethTxTrace,
  type ParityTrace,
  traceMethodFor,
} from "./traces.js";

const TX = "0xaa";
const BLOCK = `0x${"b1".repeat(32)}` as const;
const A = "0x000000000000000000000000000000000000000a" as const;
const B = "0x000000000000000000000000000000000000000b" as const;
const C = "0x000000000000000000000000000000000000000c";

function call(
  traceAddress: number[],
  to: string,
  value: string,
  error?: string,
  callType = "call",
): ParityTrace {
  return {
    type: "call",
    action: { from: A, to: to as `0x${string}`, value: value as `0x${string}`, callType },
    traceAddress,
    transactionHash: TX,
    transactionPosition: 3,
    ...(error ? { error } : {}),
  };
}

describe("framesFromParity", () => {
  it("marks frames under a reverted ancestor as reverted, even when they report success", () => {
    const frames = framesFromParity([
      call([], B, "0x10"),
      call([0], B, "0x1"),
      call([1], C, "0x2", "Reverted"),
      call([1, 0], C, "0x3"), // succeeded inside a reverted frame: moved nothing
      call([2], C, "0x4", undefined, "delegatecall"), // no value moves with delegatecall
    ]);
    expect(frames.map((f) => [f.path.join("."), f.value, f.reverted])).toEqual([
      ["", 16n, false],
      ["0", 1n, false],
      ["1", 2n, true],
      ["1.0", 3n, true],
    ]);
    expect(frames[0]!.txIndex).toBe(3);
  });

  it("reads creates and selfdestructs, skips block rewards", () => {
    const frames = framesFromParity([
      {
        type: "create",
        action: { from: A, value: "0x5" },
        result: { address: B },
        traceAddress: [0],
        transactionHash: TX,
        transactionPosition: 0,
      },
      {
        type: "suicide",
        action: { address: B, refundAddress: C, balance: "0x6" },
        traceAddress: [1],
        transactionHash: TX,
        transactionPosition: 0,
      },
      {
        type: "reward",
        action: { value: "0x9" },
        traceAddress: [],
        transactionHash: null,
        transactionPosition: null,
      },
    ]);
    expect(frames.map((f) => [f.kind, f.from, f.to, f.value])).toEqual([
      ["create", A, B, 5n],
      ["selfdestruct", B, C, 6n],
    ]);
  });
});

describe("framesFromGeth", () => {
  it("walks the call tree with paths and inherited reverts", () => {
    const frames = framesFromGeth(
      [
        {
          result: {
            type: "CALL",
            from: A,
            to: B,
            value: "0x10",
            calls: [
              { type: "CALL", from: B, to: C, value: "0x1" },
              {
                type: "CALL",
                from: B,
                to: B,
                value: "0x2",
                error: "execution reverted",
                calls: [{ type: "CALL", from: B, to: C, value: "0x3" }],
              },
              { type: "STATICCALL", from: B, to: C },
            ],
          },
        },
      ],
      [TX],
      BLOCK,
    );
    expect(frames.every((f) => f.blockHash === BLOCK)).toBe(true);
    expect(frames.map((f) => [f.txHash, f.path.join("."), f.value, f.reverted])).toEqual([
      [TX, "", 16n, false],
      [TX, "0", 1n, false],
      [TX, "1", 2n, true],
      [TX, "1.0", 3n, true],
    ]);
  });

  // An answer names no block: one that does not fit the block asked for is refused, never
  // attributed by position (another block at that height would become facts of ours).
  it("refuses an answer naming another transaction, or another count, and a failed trace", () => {
    const trace = (txHash?: `0x${string}`): GethTxTrace => ({
      ...(txHash ? { txHash } : {}),
      result: { type: "CALL", from: A, to: B, value: "0x7" },
    });
    const other = `0x${"bb".repeat(32)}` as const;
    expect(() => framesFromGeth([trace(other)], [TX], BLOCK)).toThrow(
      /position 0 .* is of 0xbb.*not the block's 0xaa/,
    );
    expect(() => framesFromGeth([trace(), trace()], [TX], BLOCK)).toThrow(
      /has 2 transactions, the block 1/,
    );
    expect(() => framesFromGeth([], [TX], BLOCK)).toThrow(/has 0 transactions, the block 1/);
    expect(() => framesFromGeth([{ txHash: TX, error: "execution timeout" }], [TX], BLOCK)).toThrow(
      /no trace of 0xaa .*execution timeout/,
    );
    // Named or by position, the block's own answer is read.
    expect(framesFromGeth([trace(TX)], [TX], BLOCK)).toHaveLength(1);
    expect(framesFromGeth([trace()], [TX], BLOCK)).toHaveLength(1);
  });
});

describe("traceMethodFor", () => {
  it("maps the chain's tracesMethod to the adapter's method; absent or auto lets it probe", () => {
    expect(traceMethodFor({ tracesMethod: "trace_block" })).toBe("trace_block");
    expect(traceMethodFor({ tracesMethod: "debug_traceBlockByHash" })).toBe("debug");
    expect(traceMethodFor({ tracesMethod: "debug_traceBlockByNumber" })).toBe("debug");
    expect(traceMethodFor({ tracesMethod: "auto" })).toBeUndefined();
    expect(traceMethodFor({})).toBeUndefined();
  });
});
