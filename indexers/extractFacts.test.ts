import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import {
  ChainDataInconsistentError,
  EMPTY_TRANSACTIONS_ROOT,
  type RawBlock,
  type RawLog,
  type RawReceipt,
  TRANSFER_TOPIC,
} from "../chains/index.js";
import {
  directTransferRecipient,
  extractFacts,
  type RangeData,
  transfersWithoutLog,
} from "./extractFacts.js";

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
const TX_C: Hex = `0x${"c".repeat(64)}`;
function log(
  n: number,
  blockHash: Hex,
  topics: Hex[],
  index = 0,
  over: Partial<RawLog> & { amount?: bigint } = {},
): RawLog {
  const { amount = 5n, ...rest } = over;
  return {
    address: TOKEN,
    topics,
    data: `0x${amount.toString(16).padStart(64, "0")}`,
    blockNumber: `0x${n.toString(16)}`,
    blockHash,
    transactionHash: TX_C,
    transactionIndex: "0x0",
    logIndex: `0x${index.toString(16)}`,
    ...rest,
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

/** A block with one transaction the watched W sent (5 wei to X), and its receipt's common fields. */
function watchedSend() {
  const b = block(1);
  const hash: Hex = `0x${"e".repeat(64)}`;
  b.transactions = [
    {
      hash,
      from: W,
      to: X,
      value: "0x5",
      transactionIndex: "0x0",
      blockHash: b.hash,
      blockNumber: b.number,
    },
  ];
  const receipt = {
    transactionHash: hash,
    transactionIndex: "0x0",
    blockHash: b.hash,
    blockNumber: b.number,
    from: W,
    to: X,
    status: "0x1",
    gasUsed: "0x5208",
    effectiveGasPrice: "0x2",
    contractAddress: null,
  } as const;
  return { b, hash, receipt };
}

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
      {
        kind: "erc20",
        position: "transfer:0",
        logIndex: 0,
        from: X,
        to: W,
        amount: 5n,
        blockNumber: 1n,
      },
    ]);
  });

  describe("ERC-20 position: ordinal among the tx's listed-token Transfer logs", () => {
    const OTHER = "0x00000000000000000000000000000000000000bb";
    const Y: Hex = "0x0000000000000000000000000000000000000003";
    const Z: Hex = "0x0000000000000000000000000000000000000004";
    const watchedWZ = { has: (a: string) => a === W || a === Z };
    const TX_D: Hex = `0x${"d".repeat(64)}`;
    /** A batch payout in tx C at logIndex base.., preceded by an unrelated tx D's logs. */
    const payout = (base: number) => [
      log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(W)], base, { amount: 7n }),
      // not watched, but listed: counts towards the ordinal
      log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(Y)], base + 1, { amount: 8n }),
      // unlisted token and an Approval-like log: do not count
      log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(Z)], base + 2, { address: OTHER }),
      log(1, h(1), [`0x${"e".repeat(64)}`, topic(X), topic(Z)], base + 3),
      log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(Z)], base + 4, { amount: 9n }),
    ];

    it("numbers each tx's transfers from 0 in logIndex order, whatever the block-wide index", () => {
      const other = log(1, h(1), [TRANSFER_TOPIC, topic(X), topic(W)], 0, {
        transactionHash: TX_D,
        amount: 1n,
      });
      // Logs arrive unordered (range answer plus recovery): the ordinal follows logIndex.
      const facts = extractFacts(data({ logs: [...payout(3).reverse(), other] }), {
        watched: watchedWZ,
        tokens: [TOKEN],
      });
      const summary = facts.map((f) => [f.txHash.slice(0, 3), f.position, f.logIndex, f.amount]);
      expect(summary).toEqual(
        expect.arrayContaining([
          ["0xc", "transfer:0", 3, 7n],
          ["0xc", "transfer:2", 7, 9n],
          ["0xd", "transfer:0", 0, 1n],
        ]),
      );
      expect(summary).toHaveLength(3);
    });

    it("gives the same (tx, position, recipient, amount) when the tx is re-included lower", () => {
      const key = (base: number) =>
        extractFacts(data({ logs: payout(base) }), { watched: watchedWZ, tokens: [TOKEN] }).map(
          (f) => `${f.txHash}/${f.position}/${f.to}/${f.amount}`,
        );
      expect(key(4)).toEqual(key(3));
      expect(key(3)).toHaveLength(2);
    });

    it("counts a log delivered twice once", () => {
      const twice = [...payout(0), ...payout(0)];
      const facts = extractFacts(data({ logs: twice }), { watched: watchedWZ, tokens: [TOKEN] });
      expect(facts.map((f) => f.position)).toEqual(["transfer:0", "transfer:2"]);
    });

    it("does not depend on which addresses are watched", () => {
      const all = { has: () => true };
      const positions = (w: { has: (a: string) => boolean }) =>
        new Map(
          extractFacts(data({ logs: payout(0) }), { watched: w, tokens: [TOKEN] }).map((f) => [
            f.logIndex,
            f.position,
          ]),
        );
      const everything = positions(all);
      for (const [logIndex, position] of positions(watchedWZ))
        expect(everything.get(logIndex)).toBe(position);
      expect(everything.get(4)).toBe("transfer:2");
    });
  });

  it("refuses a range whose blocks do not link", () => {
    expect(() =>
      extractFacts(data({ blocks: [block(1), block(2, "b")] }), { watched, tokens: [TOKEN] }),
    ).toThrow(ChainDataInconsistentError);
  });

  it("refuses a block answered without its transactions while its header holds some (a node missing the body); an empty block or one without a root is taken", () => {
    const bare = { ...block(2), transactionsRoot: `0x${"1".repeat(64)}` as Hex };
    expect(() =>
      extractFacts(data({ blocks: [block(1), bare] }), { watched, tokens: [TOKEN] }),
    ).toThrow(/block 2 .* without its transactions/);
    const empty = { ...block(2), transactionsRoot: EMPTY_TRANSACTIONS_ROOT };
    for (const b of [empty, block(2)])
      expect(extractFacts(data({ blocks: [block(1), b] }), { watched, tokens: [TOKEN] })).toEqual(
        [],
      );
  });

  it("refuses a log from another fork of a fetched height", () => {
    expect(() =>
      extractFacts(data({ logs: [log(2, h(2, "b"), [TRANSFER_TOPIC, topic(X), topic(W)])] }), {
        watched,
        tokens: [TOKEN],
      }),
    ).toThrow(ChainDataInconsistentError);
  });

  it("records what a watched sender paid on an OP-stack chain: gas plus the receipt's L1 data fee", () => {
    // A withdrawal on Base/Optimism: the hot wallet pays gasUsed x effectiveGasPrice and the L1
    // data fee the receipt carries; the signer books both to fees:gas, so the fact must say both.
    const { b, hash, receipt: paid } = watchedSend();
    const receipt = { ...paid, l1Fee: "0x10" } as const;
    const facts = extractFacts(
      data({ blocks: [b], frames: [[]], receipts: new Map([[hash, receipt]]) }),
      { watched, tokens: [] },
    );
    expect(facts.find((f) => f.kind === "fee")).toMatchObject({
      position: "fee",
      from: W,
      amount: 21_000n * 2n + 16n,
    });
  });

  it("on an OP-stack chain refuses a watched sender's receipt without l1Fee (not known yet); an L1 chain's or a deposit's needs none", () => {
    // A node or proxy that drops fields it does not know: the fee fact would be gas alone, less
    // than the signer books, and a fee mismatch in reconciliation.
    const { b, hash, receipt: paid } = watchedSend();
    const receipt = { ...paid, type: "0x2" } as const;
    const range = (r: typeof receipt | (Omit<typeof receipt, "type"> & { type: "0x7e" })) =>
      data({ blocks: [b], frames: [[]], receipts: new Map([[hash, r]]) });
    expect(() =>
      extractFacts(range(receipt), { watched, tokens: [], l1DataFee: "op-stack" }),
    ).toThrow(/l1Fee/);
    expect(() =>
      extractFacts(range(receipt), { watched, tokens: [], l1DataFee: "op-stack" }),
    ).toThrow(ChainDataInconsistentError);
    const fee = (facts: ReturnType<typeof extractFacts>) =>
      facts.find((f) => f.kind === "fee")?.amount;
    expect(fee(extractFacts(range(receipt), { watched, tokens: [], l1DataFee: "none" }))).toBe(
      42_000n,
    );
    expect(fee(extractFacts(range(receipt), { watched, tokens: [] }))).toBe(42_000n);
    // An L1-to-L2 deposit from the same address: its gas was bought on L1, no l1Fee exists.
    expect(
      fee(
        extractFacts(range({ ...receipt, type: "0x7e" }), {
          watched,
          tokens: [],
          l1DataFee: "op-stack",
        }),
      ),
    ).toBe(42_000n);
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

  it("refuses a watched transaction's receipt without status (not known yet, never a failure)", () => {
    const { b, hash, receipt } = watchedSend();
    const { status: _dropped, ...noStatus } = receipt;
    const receipts = new Map([[hash, noStatus as unknown as RawReceipt]]);
    expect(() =>
      extractFacts(data({ blocks: [b], receipts, frames: [[]] }), { watched, tokens: [] }),
    ).toThrow(/has no status/);
  });
});

describe("transfersWithoutLog", () => {
  const word = (a: string) => a.slice(2).padStart(64, "0");
  const amount = "0".repeat(63) + "5";
  const transferTo = (to: string) => `0xa9059cbb${word(to)}${amount}` as Hex;
  const transferFromTo = (to: string) => `0x23b872dd${word(X)}${word(to)}${amount}` as Hex;
  /** Block 1 with one call of `input` to `to` (tx TX_C). */
  function withCall(input: Hex, to: Hex = TOKEN) {
    const b = block(1);
    b.transactions = [
      {
        hash: TX_C,
        from: X,
        to,
        value: "0x0",
        input,
        transactionIndex: "0x0",
        blockHash: b.hash,
        blockNumber: b.number,
      },
    ];
    return b;
  }
  const toW = (b: RawBlock) => log(1, b.hash, [TRANSFER_TOPIC, topic(X), topic(W)]);

  it("reads the recipient of transfer and transferFrom calldata, nothing else", () => {
    expect(directTransferRecipient(transferTo(W))).toBe(W);
    expect(directTransferRecipient(transferFromTo(W))).toBe(W);
    expect(directTransferRecipient(transferTo(W).slice(0, 74))).toBeNull(); // cut calldata
    expect(directTransferRecipient("0x095ea7b3" + word(W) + amount)).toBeNull(); // approve
    expect(directTransferRecipient(undefined)).toBeNull();
  });

  it("names a listed-token transfer to a watched address whose Transfer the logs lack", () => {
    for (const input of [transferTo(W), transferFromTo(W)]) {
      const b = withCall(input);
      expect(
        transfersWithoutLog({ blocks: [b], logs: [] }, { watched, tokens: [TOKEN] }).map((m) => [
          m.txHash,
          m.token,
          m.to,
        ]),
      ).toEqual([[TX_C, TOKEN, W]]);
      expect(
        transfersWithoutLog({ blocks: [b], logs: [toW(b)] }, { watched, tokens: [TOKEN] }),
      ).toEqual([]);
    }
  });

  it("ignores calls to unwatched recipients, unlisted tokens and other logs of the tx", () => {
    const other = "0x00000000000000000000000000000000000000bb" as Hex;
    expect(
      transfersWithoutLog(
        { blocks: [withCall(transferTo(X))], logs: [] },
        { watched, tokens: [TOKEN] },
      ),
    ).toEqual([]);
    expect(
      transfersWithoutLog(
        { blocks: [withCall(transferTo(W), other)], logs: [] },
        { watched, tokens: [TOKEN] },
      ),
    ).toEqual([]);
    // A Transfer of the tx to someone else does not stand for the one to W.
    const b = withCall(transferTo(W));
    const toX = log(1, b.hash, [TRANSFER_TOPIC, topic(W), topic(X)]);
    expect(
      transfersWithoutLog({ blocks: [b], logs: [toX] }, { watched, tokens: [TOKEN] }),
    ).toHaveLength(1);
  });
});
