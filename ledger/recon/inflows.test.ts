import { describe, expect, it } from "vitest";
import { checkBalances } from "./balances.js";
import { findUnattributedInflows } from "./inflows.js";
import type { CustodyKind } from "./types.js";

const ETH = "1:0x0000000000000000000000000000000000000000";
const A = `0x${"a1".repeat(20)}`;
const B = `0x${"b2".repeat(20)}`;
const C = `0x${"c3".repeat(20)}`;

describe("findUnattributedInflows", () => {
  const onchain = [
    { address: A, kind: "deposit" as const, assetId: ETH, balance: 150n },
    { address: B, kind: "deposit" as const, assetId: ETH, balance: 40n },
    { address: C, kind: "deposit" as const, assetId: ETH, balance: 999n },
  ];
  const expected = new Map([
    [`${A}|${ETH}`, 100n],
    [`${B}|${ETH}`, 60n],
  ]);

  it("reports only checked addresses holding more than their facts, sweeps and credits explain", () => {
    const breaks = findUnattributedInflows({ onchain, expected, addresses: [A, B] });
    expect(breaks.map((b) => [b.type, b.key, b.chainAmount, b.ledgerAmount, b.difference])).toEqual(
      [["unattributed_inflow", `inflow:${A}`, 150n, 100n, -50n]],
    );
    // C is not in this run's selection: not examined.
    expect(findUnattributedInflows({ onchain, expected, addresses: [] })).toEqual([]);
    expect(findUnattributedInflows({ onchain, expected, addresses: [C] })[0]?.difference).toBe(
      -999n,
    );
  });

  it("explains the deposit addresses' balance difference (no unexplained_balance_difference on top)", () => {
    const breaks = findUnattributedInflows({ onchain, expected, addresses: [A] });
    const custody = new Map<string, CustodyKind>([[A, "deposit"]]);
    const r = checkBalances({
      onchain: [onchain[0]!],
      ledger: new Map([[`${ETH}|custody:deposits`, 100n]]),
      liabilities: new Map([[ETH, 100n]]),
      breaks,
      custody,
    });
    const deposits = r.checks.find((c) => c.scope === "deposits")!;
    expect([deposits.difference, deposits.unexplained]).toEqual([-50n, 0n]);
    expect(r.breaks).toEqual([]);
  });
});
