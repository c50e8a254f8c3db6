/**
 * Money that comes back to a customer who owes a reorg receivable (DESIGN "Money flows"): a
 * withdrawal's hold released (pulled back, rejected, cancelled, failed) or a new deposit credited
 * lands on their blocked balance. Once the removed deposit is final without returning, that
 * available money is applied to `receivable:reorg:<id>` by the crediting pass (one transfer with a
 * deterministic id, audited) until the receivable is zero, and then the block is lifted. While the
 * hold is still pending (the deposit may yet confirm again) nothing is applied.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../foundation/audit.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "./depositCrediting.js";
import { transferId } from "./transferId.js";
import { isWithdrawalBlocked } from "./withdrawalBlocks.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const D_GINA = `0x${"e1".repeat(20)}`;
const D_HUGO = `0x${"e2".repeat(20)}`;
const D_IDA = `0x${"e3".repeat(20)}`;
const HOT = `0x${"a1".repeat(20)}`;
let ctx: TestContext;
let ledger: Ledger;
let crediting: DepositCrediting;
let txCounter = 0;

const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "0")}`;

async function fact(f: { tx: string; block: string; number: number; to: string; amount: bigint }) {
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
       from_address, to_address, amount, status, orphaned_after_confirmation)
     VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, $8, 'confirmed', false)`,
    [CHAIN, f.number, f.block, f.tx, ZERO, `0x${"ee".repeat(20)}`, f.to, f.amount.toString()],
  );
}
async function orphan(tx: string, block: string) {
  await ctx.db.pool.query(
    "UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true WHERE tx_hash = $1 AND block_hash = $2",
    [tx, block],
  );
  await ctx.db.pool.query(
    `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
       new_tip_number, new_tip_hash, beyond_window)
     SELECT $1, 1, min(block_number) - 1, min(block_number), $2, min(block_number), '0xnew', false
       FROM chain.transfers WHERE tx_hash = $3 AND block_hash = $2`,
    [CHAIN, block, tx],
  );
}
const setFinalized = (n: number) =>
  ctx.db.pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
     VALUES ($1, 100, '0xtip', $2, '0xfinal')
     ON CONFLICT (chain_id) DO UPDATE SET finalized_number = $2`,
    [CHAIN, n],
  );
const user = (owner: string) => ledger.balance({ assetId: ETH, name: `user:${owner}` });
const owed = async (owner: string) => {
  const r = await ledger.balance({ assetId: ETH, name: `receivable:reorg:${owner}` });
  return { posted: r.debitsPosted - r.creditsPosted, pending: r.debitsPending };
};
const withdrawalHold = (id: string, owner: string, amount: bigint) =>
  ledger.hold({
    id: transferId(`withdrawal:${id}`),
    assetId: ETH,
    debit: `user:${owner}`,
    credit: `custody:hot:${HOT}`,
    amount,
    kind: "withdrawal",
  });
const releaseWithdrawal = (id: string) =>
  ledger.voidPending({
    id: transferId(`withdrawal-void:${id}`),
    pendingId: transferId(`withdrawal:${id}`),
  });

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'hot', 'hot-1'),
       ($1, $3, 'deposit', 'gina'), ($1, $4, 'deposit', 'hugo'), ($1, $5, 'deposit', 'ida')`,
    [CHAIN, HOT, D_GINA, D_HUGO, D_IDA],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("a reorg receivable is repaid from money that comes back to the customer", () => {
  it("applies a released withdrawal hold to the receivable once the removed deposit is final, then lifts the block", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xa1", number: 20, to: D_GINA, amount: 150n });
    await crediting.sweep();
    await withdrawalHold("gina-1", "gina", 140n);
    await orphan(tx, "0xa1");
    expect((await crediting.sweep()).held).toBe(1);
    expect(await owed("gina")).toEqual({ posted: 0n, pending: 140n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "gina")).toBe(true);

    // The withdrawal is pulled back (its hold released): 140 is back on gina's blocked balance.
    await releaseWithdrawal("gina-1");
    // The deposit may still confirm again: nothing is taken while the hold is pending.
    await crediting.sweep();
    expect((await user("gina")).available).toBe(140n);
    expect(await owed("gina")).toEqual({ posted: 0n, pending: 140n });

    // Final without it: the receivable is posted, and repaid from what came back.
    await setFinalized(20);
    expect((await crediting.sweep()).finalized).toBe(1);
    expect(await owed("gina")).toEqual({ posted: 0n, pending: 0n });
    expect((await user("gina")).available).toBe(0n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "gina")).toBe(false);
    const audit = await listAudit(ctx.db.pool, {
      entityType: "customer",
      entityId: "gina",
      limit: 10,
    });
    expect(audit).toMatchObject([
      {
        actor: "deposit-crediting",
        action: "ledger.reorg_receivable.repaid",
        details: { asset_id: ETH, amount: "140", still_owed: "0" },
      },
    ]);
    // Nothing twice.
    await crediting.sweep();
    expect(await owed("gina")).toEqual({ posted: 0n, pending: 0n });
    expect(
      (await listAudit(ctx.db.pool, { entityType: "customer", entityId: "gina", limit: 10 }))
        .length,
    ).toBe(1);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("applies what is available, keeps the block while anything is owed, and takes the rest from a later deposit", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xb1", number: 30, to: D_HUGO, amount: 200n });
    await crediting.sweep();
    await withdrawalHold("hugo-1", "hugo", 150n);
    await withdrawalHold("hugo-2", "hugo", 50n);
    await orphan(tx, "0xb1");
    await crediting.sweep();
    await setFinalized(30);
    await crediting.sweep();
    expect(await owed("hugo")).toEqual({ posted: 200n, pending: 0n });

    // One withdrawal failed: 50 back, applied; 150 still owed, still blocked.
    await releaseWithdrawal("hugo-2");
    await crediting.sweep();
    expect(await owed("hugo")).toEqual({ posted: 150n, pending: 0n });
    expect((await user("hugo")).available).toBe(0n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "hugo")).toBe(true);

    // A new deposit of 400: 150 of it settles the receivable, 250 stays the customer's.
    await fact({ tx: txHash(), block: "0xb2", number: 31, to: D_HUGO, amount: 400n });
    await crediting.sweep();
    expect(await owed("hugo")).toEqual({ posted: 0n, pending: 0n });
    expect((await user("hugo")).available).toBe(250n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "hugo")).toBe(false);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("leaves a frozen customer's balance alone, and repays once the account is unfrozen", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xc1", number: 40, to: D_IDA, amount: 90n });
    await crediting.sweep();
    await withdrawalHold("ida-1", "ida", 90n);
    await orphan(tx, "0xc1");
    await crediting.sweep();
    await setFinalized(40);
    await crediting.sweep();
    expect(await owed("ida")).toEqual({ posted: 90n, pending: 0n });

    await ledger.freeze({ assetId: ETH, name: "user:ida" });
    await releaseWithdrawal("ida-1");
    await crediting.sweep();
    expect(await owed("ida")).toEqual({ posted: 90n, pending: 0n });
    expect((await user("ida")).available).toBe(90n);

    await ledger.unfreeze({ assetId: ETH, name: "user:ida" });
    await crediting.sweep();
    expect(await owed("ida")).toEqual({ posted: 0n, pending: 0n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "ida")).toBe(false);
    expect((await ledger.check()).problems).toEqual([]);
  });
});
