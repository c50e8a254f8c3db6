/**
 * A treasury booking names a chain fact; a fact the custody's own flows already booked (a
 * withdrawal's payment and gas, a sweep) is not the operator's move. Given such a tx hash by
 * mistake, `treasury gas` / `defund` booked it a second time: the hot wallet's gas or value counted
 * twice (custody:hot below the chain, treasury or fees:gas misstated), "booked" printed and
 * audited. It is refused, naming the booking that holds the fact, and nothing is written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "./createLedger.js";
import { gasBooking } from "./gasBookings.js";
import { startTreasuryFileTest, type TreasuryFileTest } from "./testing/treasury.js";
import { transferId } from "./transferId.js";
import { bookTreasuryMove } from "./treasury.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const HOT = `0x${"a1".repeat(20)}`;
const TX = `0x${"ab".repeat(32)}`;
let t: TreasuryFileTest;
let ledger: Ledger;

beforeAll(async () => {
  t = await startTreasuryFileTest(HOT, CHAIN);
  ledger = t.ledger;
});
afterAll(async () => {
  await t?.close();
});

describe("a treasury booking of a fact another flow booked", () => {
  it("is refused and writes nothing", async () => {
    // A withdrawal from the hot wallet: its payment (a posted hold with the value fact) and its gas.
    const hold = transferId("test-withdrawal-hold");
    const results = await ledger.createTransfers([
      {
        id: transferId("test-deposit"),
        assetId: ETH,
        debit: "custody:deposits",
        credit: "user:alice",
        amount: 1_000n,
        kind: "deposit",
      },
      {
        id: hold,
        type: "pending",
        assetId: ETH,
        debit: "user:alice",
        credit: `custody:hot:${HOT}`,
        amount: 500n,
        kind: "withdrawal",
      },
      {
        id: transferId("test-withdrawal-post"),
        type: "post",
        pendingId: hold,
        chainRef: { chainId: CHAIN, txHash: TX, position: "tx" },
      },
      gasBooking({
        id: transferId("test-withdrawal-gas"),
        chainId: CHAIN,
        hotWallet: HOT,
        txHash: TX,
        amount: 21n,
        memo: "gas of withdrawal",
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["created", "created", "created", "created"]);
    const hot = { assetId: ETH, name: `custody:hot:${HOT}` };
    const before = await ledger.balance(hot);
    const audits = async () =>
      (
        await t.ctx.db.pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM audit.audit_log WHERE action LIKE 'treasury.%'",
        )
      ).rows[0]!.n;

    const deps = t.deps;
    const by = { by: "ops", reason: "gas of the withdrawal tx, by mistake" };
    await expect(
      bookTreasuryMove(deps, {
        move: "gas",
        chainId: CHAIN,
        txHash: TX,
        wallet: HOT,
        amount: 21n,
        ...by,
      }),
    ).rejects.toMatchObject({ code: "TREASURY_MOVE_REFUSED" });
    await expect(
      bookTreasuryMove(deps, {
        move: "defund",
        chainId: CHAIN,
        txHash: TX,
        wallet: HOT,
        amount: 500n,
        fee: 21n,
        ...by,
      }),
    ).rejects.toMatchObject({
      code: "TREASURY_MOVE_REFUSED",
      message: expect.stringContaining("already booked"),
    });

    expect(await ledger.balance(hot)).toEqual(before);
    expect(await audits()).toBe(0);
  });
});
