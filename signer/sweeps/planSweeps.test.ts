import { zeroAddress } from "viem";
import { describe, expect, it } from "vitest";
import { type ChainConfig, chainSchema } from "../../chains/index.js";
import {
  balanceKey,
  capByOnChain,
  planSweeps,
  type SweepCandidate,
  sweepThresholds,
  unchangedSince,
} from "./planSweeps.js";

const TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const OTHER = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512";
const F = "0x00000000000000000000000000000000000000f1";
const salt = (n: number) => `0x${n.toString(16).padStart(64, "0")}` as const;
const addr = (n: number) => `0x${n.toString(16).padStart(40, "0")}`;

function candidate(n: number, asset: string, balance: bigint, factory = F): SweepCandidate {
  return { address: addr(n), salt: salt(n), factory, asset, balance };
}

describe("sweepThresholds", () => {
  it("reads native and token thresholds, skipping assets without one", () => {
    const chain: ChainConfig = chainSchema.parse({
      key: "a",
      chainId: 1,
      name: "a",
      rpcUrls: ["http://127.0.0.1:1"],
      confirmations: { kind: "blocks", blocks: 1 },
      reorgWindow: 4,
      blockTimeMs: 1000,
      feeModel: "eip1559",
      nativeSweepThreshold: "1000",
      tokens: [
        { address: TOKEN, symbol: "T", decimals: 6, sweepThreshold: "5" },
        { address: OTHER, symbol: "O", decimals: 6 },
      ],
    });
    expect([...sweepThresholds(chain)]).toEqual([
      [zeroAddress, 1000n],
      [TOKEN, 5n],
    ]);
  });
});

describe("planSweeps", () => {
  const thresholds = new Map([
    [zeroAddress, 100n],
    [TOKEN, 10n],
  ]);

  it("keeps only balances at or above their asset's threshold, and never assets without one", () => {
    const plan = planSweeps(
      [
        candidate(1, zeroAddress, 99n),
        candidate(2, zeroAddress, 100n),
        candidate(3, TOKEN, 9n),
        candidate(4, TOKEN, 10n),
        candidate(5, OTHER, 10n ** 30n),
        candidate(6, TOKEN, 0n),
      ],
      thresholds,
      50,
    );
    expect(plan).toHaveLength(1);
    expect(plan[0]!.items.map((i) => [i.address, i.asset, i.planned])).toEqual([
      [addr(2), zeroAddress, 100n],
      [addr(4), TOKEN, 10n],
    ]);
    expect(plan[0]!.salts).toEqual([salt(2), salt(4)]);
    expect(plan[0]!.tokens).toEqual(["0x5FbDB2315678afecb367f032d93F642f64180aa3"]);
  });

  it("batches addresses (not items) per factory, each address once with all its assets", () => {
    const cands: SweepCandidate[] = [];
    for (let n = 1; n <= 7; n++) {
      cands.push(candidate(n, TOKEN, 50n));
      if (n % 2 === 0) cands.push(candidate(n, zeroAddress, 500n));
    }
    cands.push(candidate(100, TOKEN, 50n, "0x00000000000000000000000000000000000000f2"));
    const plan = planSweeps(cands.reverse(), thresholds, 3);
    expect(plan.map((p) => [p.factory.slice(-2), p.salts.length])).toEqual([
      ["f1", 3],
      ["f1", 3],
      ["f1", 1],
      ["f2", 1],
    ]);
    expect(plan.flatMap((p) => p.salts)).toEqual([...[1, 2, 3, 4, 5, 6, 7].map(salt), salt(100)]);
    expect(plan[0]!.items).toHaveLength(4); // addresses 1, 2 (native + token), 3
    const total = plan.flatMap((p) => p.items).reduce((s, i) => s + i.planned, 0n);
    expect(total).toBe(8n * 50n + 3n * 500n);
  });

  it("rejects a non-positive batch size", () => {
    expect(() => planSweeps([], thresholds, 0)).toThrow(RangeError);
  });
});

describe("capByOnChain", () => {
  it("plans the smaller of the ledger's sweepable balance and what the address holds", () => {
    const held = new Map([
      [balanceKey(addr(1), zeroAddress), 700n],
      [balanceKey(addr(2), zeroAddress), 5_000n],
      [balanceKey(addr(3), TOKEN), 0n],
    ]);
    const capped = capByOnChain(
      [
        candidate(1, zeroAddress, 1_000n),
        candidate(2, zeroAddress, 1_000n),
        candidate(3, TOKEN, 10n),
        candidate(4, TOKEN, 10n),
      ],
      held,
    );
    // 1: credit above balance -> balance; 2: balance above credit -> credit (uncredited value is
    // moved by the forwarder but never planned); 3: holds nothing; 4: balance not read -> dropped.
    expect(capped.map((c) => [c.address, c.balance])).toEqual([
      [addr(1), 700n],
      [addr(2), 1_000n],
    ]);
  });

  it("keys balances by lowercase address and asset", () => {
    expect(balanceKey("0xABCDEF0000000000000000000000000000000001", TOKEN.toUpperCase())).toBe(
      `0xabcdef0000000000000000000000000000000001:${TOKEN}`,
    );
  });
});

describe("unchangedSince", () => {
  it("keeps pairs whose ledger balance held or rose since the on-chain read, drops those it fell for", () => {
    const before = [
      candidate(1, zeroAddress, 1_000n),
      candidate(2, zeroAddress, 1_000n),
      candidate(3, zeroAddress, 1_000n),
      candidate(3, TOKEN, 10n),
    ];
    const now = [
      candidate(1, zeroAddress, 1_000n), // unchanged
      candidate(2, zeroAddress, 1_500n), // credited again
      candidate(3, zeroAddress, 400n), // something swept or reversed meanwhile
      candidate(3, TOKEN, 10n), // its other asset did not change
      candidate(4, zeroAddress, 900n), // not read before: capByOnChain has no reading for it
    ];
    expect(unchangedSince(now, before)).toEqual([now[0], now[1], now[3], now[4]]);
    // A pair first seen under the lock is then dropped for want of an on-chain reading.
    const held = new Map(before.map((c) => [balanceKey(c.address, c.asset), 5_000n]));
    expect(capByOnChain(unchangedSince(now, before), held).map((c) => c.address)).toEqual([
      addr(1),
      addr(2),
      addr(3),
    ]);
  });
});
