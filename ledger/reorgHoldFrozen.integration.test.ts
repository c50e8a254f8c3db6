/**
 * A reorg removes a credited deposit of a customer whose account is frozen (e.g. under
 * investigation). The reorg hold must still be placed: freezing stops the customer spending, it
 * must not keep a deposit that is no longer on the chain credited. Refused, the hold's id failed
 * for good (LEDGER_ACCOUNT_FROZEN is sticky), every later pass tried the same id, and after the
 * account was unfrozen the customer could withdraw the vanished deposit. A credit left that way
 * by such a build is held under the next hold name (its failed id would be refused forever).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createDepositCrediting, reorgHoldName } from "./depositCrediting.js";
import { depositTransferName, transferId } from "./transferId.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const DEPOSIT = `0x${"d1".repeat(20)}`;
const D_BOB = `0x${"d2".repeat(20)}`;
const TX = `0x${"ab".repeat(32)}`;
let ctx: TestContext;
let ledger: Ledger;

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     VALUES ($1, $2, 'deposit', 'alice'), ($1, $3, 'deposit', 'bob')`,
    [CHAIN, DEPOSIT, D_BOB],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("a reorg hold on a frozen customer account", () => {
  it("is placed, and posted at finality, however long the account stays frozen", async () => {
    const crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    const user = { assetId: ETH, name: "user:alice" };
    await ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
         asset, from_address, to_address, amount, status)
       VALUES ($1, 11, '0xb1', $2, 0, 'tx', 'native', $3, $4, $5, 50, 'confirmed')`,
      [CHAIN, TX, ZERO, `0x${"ee".repeat(20)}`, DEPOSIT],
    );
    expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(1);
    await ledger.freeze(user);

    // The indexer orphans the deposit's block and records the reorg.
    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true WHERE tx_hash = $1",
      [TX],
    );
    await ctx.db.pool.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       VALUES ($1, 1, 10, 11, '0xb1', 11, '0xnew', false)`,
      [CHAIN],
    );
    // Held at once, frozen or not: no window after the unfreeze where the deposit can be withdrawn.
    expect((await crediting.sweep({ chainId: CHAIN })).held).toBe(1);
    expect((await ledger.balance(user)).available).toBe(0n);

    // The account is unfrozen, and passes run: the vanished deposit is not available to withdraw.
    await ledger.unfreeze(user);
    await crediting.sweep({ chainId: CHAIN });
    expect((await ledger.balance(user)).available).toBe(0n);

    // Its block is final without it: the hold is posted, the credit reversed.
    await ctx.db.pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
       VALUES ($1, 100, '0xtip', 50, '0xfinal')
       ON CONFLICT (chain_id) DO UPDATE SET finalized_number = 50`,
      [CHAIN],
    );
    expect((await crediting.sweep({ chainId: CHAIN })).finalized).toBe(1);
    const credit = await ctx.db.pool.query<{ state: string }>(
      "SELECT state FROM ledger.deposit_credits WHERE tx_hash = $1",
      [TX],
    );
    expect(credit.rows.map((r) => r.state)).toEqual(["final"]);
    expect(await ledger.balance(user)).toMatchObject({
      available: 0n,
      creditsPosted: 50n,
      debitsPosted: 50n,
    });
    expect((await ledger.check()).ok).toBe(true);
  });

  it("a credit whose hold id failed before (sticky) is held under the next name", async () => {
    const crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    const tx = `0x${"cd".repeat(32)}`;
    const user = { assetId: ETH, name: "user:bob" };
    await ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
         asset, from_address, to_address, amount, status)
       VALUES ($1, 61, '0xc1', $2, 0, 'tx', 'native', $3, $4, $5, 30, 'confirmed')`,
      [CHAIN, tx, ZERO, `0x${"ee".repeat(20)}`, D_BOB],
    );
    expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(1);
    // As a build that refused reorg holds on frozen accounts left it: the hold's id failed for good.
    const creditId = transferId(depositTransferName(CHAIN, tx, "tx"));
    await ctx.db.pool.query(
      "INSERT INTO ledger.failed_transfers (id, code, detail) VALUES ($1, 'LEDGER_ACCOUNT_FROZEN', 'user:bob is frozen')",
      [transferId(reorgHoldName(creditId, "hold"))],
    );
    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true WHERE tx_hash = $1",
      [tx],
    );
    await ctx.db.pool.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       VALUES ($1, 1, 60, 61, '0xc1', 61, '0xnew2', false)`,
      [CHAIN],
    );
    await crediting.sweep({ chainId: CHAIN });
    await crediting.sweep({ chainId: CHAIN });
    expect((await ledger.balance(user)).available).toBe(0n);
    const held = await ctx.db.pool.query<{ state: string; hold_id: string }>(
      "SELECT state, hold_id::text FROM ledger.deposit_credits WHERE credit_id = $1",
      [creditId],
    );
    expect(held.rows).toEqual([
      { state: "held", hold_id: transferId(reorgHoldName(creditId, "hold", 1)) },
    ]);
  });
});
