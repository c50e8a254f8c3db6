import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import {
  ChainDataInconsistentError,
  type RawBlock,
  type RawLog,
  TRANSFER_TOPIC,
} from "../chains/index.js";
import { extractFacts, type RangeData } from "./extractFacts.js";

const TOKEN = "0x00000000000000000000000000000000000000aa";
const W: Hex = "0x0000000000000000000000000000000000000001";
const X: Hex = "0x0000000000000000000000000000000000000002";
const h = (n: number, fork = "a") => `0x${fork}${String(n).padStart(63, "0")}` as Hex;
const topic = (a: string) => `0x${"0".repeat(24)}${a.slice(2)}` as Hex;

function block(n: number, fork = "a"): RawBlock {
  return {
    number: `0x${n.toString(16)}`,
    hash: h(n, fork),
    parentHash: h(n - 1, fork),
    timestamp: "0x1",
    transactions: [],
  };
}
function log(n: number, blockHash: Hex, topics: Hex[], index = 0): RawLog {
  return {
    address: TOKEN,
    topics,
    data: `0x${5n.toString(16).padStart(64, "0")}`,
    blockNumber: `0x${n.toString(16)}`,
    blockHash,
    transactionHash: `0x${"c".repeat(64)}`,
    transactionIndex: "0x0",
    logIndex: `0x${index.toString(16)}`,
  };
}
const watched = { has: (a: string) => a === W };
const data = (over: Partial<RangeData>): RangeData => ({
  blocks: [block(1), block(2)],
  receipts: new Map(),
  logs: [],
  frames: [[], []],
  ...over,
});

describe("extractFacts", () => {
  it("keeps Transfer logs of listed tokens touching a watched address, skips ERC-721 and others", () => {
    const facts = extractFacts(
      data({
        logs: [
          log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(W)], 0),
          log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(X)], 1), // not watched
          log(2, h(2), [TRANSFER_TOPIC, topic(X), topic(W), topic(X)], 2), // ERC-721: 4 topics
        ],
      }),
      { watched, tokens: [TOKEN] },
    );
    expect(facts).toMatchObject([
      { kind: "erc20", position: "log:0", from: X, to: W, amount: 5n, blockNumber: 1n },
    ]);
  });

  it("refuses a range whose blocks do not link", () => {
    expect(() =>
      extractFacts(data({ blocks: [block(1), block(2, "b")] }), { watched, tokens: [TOKEN] }),
    ).toThrow(ChainDataInconsistentError);
  });

  it("refuses a log from another fork of a fetched height", () => {
    expect(() =>
      extractFacts(data({ logs: [log(2, h(2, "b"), [TRANSFER_TOPIC, topic(X), topic(W)])] }), {
        watched,
        tokens: [TOKEN],
      }),
    ).toThrow(ChainDataInconsistentError);
  });

  it("refuses a watched transaction without its receipt", () => {
    const b = block(1);
    b.transactions = [
      {
        hash: `0x${"d".repeat(64)}`,
        from: X,
        to: W,
        value: "0x1",
        transactionIndex: "0x0",
        blockHash: b.hash,
        blockNumber: b.number,
      },
    ];
    expect(() =>
      extractFacts(data({ blocks: [b], frames: [[]] }), { watched, tokens: [] }),
    ).toThrow(/no receipt/);
  });
});
