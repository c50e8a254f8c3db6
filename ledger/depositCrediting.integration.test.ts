/**
 * Deposit crediting rules against real Postgres, with chain facts written directly into
 * chain.transfers and the finalized height into chain.checkpoints (the anvil + real indexer path
 * is in depositCrediting.anvil.integration.test.ts): credit once, reorg holds, void on re-confirm,
 * post at finality, shortfall to the receivable with withdrawals blocked.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { listAudit } from "../foundation/audit.js";
import { defaultConfigPath, loadConfig } from "../foundation/config.js";
import type { ConfigError } from "../foundation/errors.js";
import { createLogger } from "../foundation/logger.js";
import { createMetrics } from "../foundation/metrics.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { chainCli, spawnCli } from "../ops/testing/process.js";
import { waitFor } from "../ops/testing/wait.js";
import { createLedger, type Ledger } from "./createLedger.js";
import {
  createDepositCrediting,
  type DepositCrediting,
  reorgHoldName,
} from "./depositCrediting.js";
import { depositTransferName, transferId } from "./transferId.js";
import { isWithdrawalBlocked } from "./withdrawalBlocks.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const TOKEN = `0x${"70".repeat(20)}`;
const TT = `${CHAIN}:${TOKEN}`;
const DEPOSIT = `0x${"d1".repeat(20)}`;
const D_BOB = `0x${"d2".repeat(20)}`;
const D_CAROL = `0x${"d3".repeat(20)}`;
const D_DAVE = `0x${"d4".repeat(20)}`;
const D_ERIN = `0x${"d5".repeat(20)}`;
const D_FRANK = `0x${"d6".repeat(20)}`;
const HOT = `0x${"a1".repeat(20)}`;
let ctx: TestContext;
let ledger: Ledger;
let crediting: DepositCrediting;
let txCounter = 0;

const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "0")}`;

async function fact(f: {
  tx: string;
  block: string;
  number?: number;
  position?: string;
  asset?: string;
  to?: string;
  amount?: bigint;
  status?: "seen" | "confirmed" | "orphaned";
  kind?: string;
  afterConfirmation?: boolean;
}) {
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
       from_address, to_address, amount, status, orphaned_after_confirmation)
     VALUES ($1, $11, $2, $3, 0, $12, $4, $5, $6, $7, $8, $9, $10)`,
    [
      CHAIN,
      f.block,
      f.tx,
      f.kind ?? "native",
      f.asset ?? ZERO,
      `0x${"ee".repeat(20)}`,
      f.to ?? DEPOSIT,
      (f.amount ?? 100n).toString(),
      f.status ?? "seen",
      f.afterConfirmation ?? false,
      f.number ?? 10,
      f.position ?? "tx",
    ],
  );
}
const setStatus = async (tx: string, block: string, status: string, afterConfirmation = false) => {
  await ctx.db.pool.query(
    "UPDATE chain.transfers SET status = $3, orphaned_after_confirmation = $4 WHERE tx_hash = $1 AND block_hash = $2",
    [tx, block, status, afterConfirmation],
  );
  // As the indexer does in the same transaction: a reorg is recorded with its common ancestor
  // (crediting's watermark goes back to it, where a re-included deposit may land).
  if (status === "orphaned")
    await ctx.db.pool.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       SELECT $1, 1, min(block_number) - 1, min(block_number), $2, min(block_number), '0xnew', false
         FROM chain.transfers WHERE tx_hash = $3 AND block_hash = $2`,
      [CHAIN, block, tx],
    );
};
const setFinalized = (n: number) =>
  ctx.db.pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
     VALUES ($1, 100, '0xtip', $2, '0xfinal')
     ON CONFLICT (chain_id) DO UPDATE SET finalized_number = $2`,
    [CHAIN, n],
  );
const balance = (owner: string) => ledger.balance({ assetId: ETH, name: `user:${owner}` });
const userBalance = async (owner: string) =>
  (await ledger.getAccount({ assetId: ETH, name: `user:${owner}` }))?.creditsPosted ?? 0n;

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await ledger.ensureAsset({
    chainId: CHAIN,
    token: TOKEN as `0x${string}`,
    symbol: "TT",
    decimals: 18,
  });
  crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'deposit', 'alice'),
       ($1, $3, 'hot', 'hot-1'), ($1, $4, 'deposit', 'bob'), ($1, $5, 'deposit', 'carol'),
       ($1, $6, 'deposit', 'dave'), ($1, $7, 'deposit', 'erin'), ($1, $8, 'deposit', 'frank')`,
    [CHAIN, DEPOSIT, HOT, D_BOB, D_CAROL, D_DAVE, D_ERIN, D_FRANK],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("deposit crediting", () => {
  it("credits a confirmed deposit exactly once, with the contract's id, chain reference and event", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xb1" });
    expect((await crediting.sweep()).credited).toBe(0); // seen is not final enough
    await setStatus(tx, "0xb1", "confirmed");
    // A doorbell's block range bounds the range scan (the fact is in block 10).
    expect(await crediting.creditConfirmed({ chainId: CHAIN, fromBlock: 11, toBlock: 20 })).toBe(0);
    // Concurrent sweeps (doorbell + timer) still credit once.
    const runs = await Promise.all([crediting.sweep(), crediting.sweep(), crediting.sweep()]);
    expect(runs.reduce((n, r) => n + r.credited, 0)).toBe(1);
    expect(await userBalance("alice")).toBe(100n);
    const t = await ledger.getTransfer(transferId(depositTransferName(CHAIN, tx, "tx")));
    expect(t).toMatchObject({
      kind: "deposit",
      amount: 100n,
      chainRef: { chainId: CHAIN, txHash: tx, position: "tx" },
    });
    const ev = await ctx.db.pool.query(
      "SELECT type, payload FROM ledger.events WHERE transfer_id = $1",
      [t?.id],
    );
    expect(ev.rows).toEqual([
      {
        type: "deposit.credited",
        payload: expect.objectContaining({ owner: "alice", amount: "100" }),
      },
    ]);
    expect((await crediting.sweep()).credited).toBe(0);
  });

  it("never credits a fact orphaned before confirmation, fees, or transfers to non-deposit addresses", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xb2", amount: 7n });
    await setStatus(tx, "0xb2", "orphaned");
    await fact({ tx: txHash(), block: "0xb2", to: HOT, status: "confirmed" });
    await fact({ tx: txHash(), block: "0xb2", kind: "fee", status: "confirmed" });
    const before = await userBalance("alice");
    expect((await crediting.sweep()).credited).toBe(0);
    expect(await userBalance("alice")).toBe(before);
  });

  it("holds a credit orphaned after confirmation, and voids the hold (no second credit) when the same deposit confirms again elsewhere", async () => {
    const tx = txHash();
    // New blocks only: a fact never appears below the watermark without a reorg (recorded).
    await fact({ tx, block: "0xc1", number: 11, amount: 50n, status: "confirmed" });
    expect((await crediting.sweep()).credited).toBe(1);
    const before = await balance("alice");
    await setStatus(tx, "0xc1", "orphaned", true);
    // Concurrent sweeps (doorbell + timer) place one hold.
    const runs = await Promise.all([crediting.sweep(), crediting.sweep(), crediting.sweep()]);
    expect(runs.reduce((n, r) => n + r.held, 0)).toBe(1);
    expect(runs.reduce((n, r) => n + r.credited + r.restored + r.finalized, 0)).toBe(0);
    expect(await crediting.sweep()).toEqual({ credited: 0, held: 0, restored: 0, finalized: 0 });
    const held = await balance("alice");
    expect(held.creditsPosted).toBe(before.creditsPosted); // nothing clawed back yet …
    expect(held.available).toBe(before.available - 50n); // … but no longer available
    expect((await ledger.balance({ assetId: ETH, name: "custody:deposits" })).creditsPending).toBe(
      50n,
    );
    const creditId = transferId(depositTransferName(CHAIN, tx, "tx"));
    const hold = await ledger.getTransfer(transferId(reorgHoldName(creditId, "hold")));
    expect(hold).toMatchObject({ type: "pending", kind: "reorg_hold", amount: 50n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "alice")).toBe(false); // fully covered

    // The same transaction mined again in another block, seen: still held.
    await fact({ tx, block: "0xc2", number: 12, amount: 50n, status: "seen" });
    expect((await crediting.sweep()).restored).toBe(0);
    await setStatus(tx, "0xc2", "confirmed");
    expect(await crediting.sweep()).toEqual({ credited: 0, held: 0, restored: 1, finalized: 0 });
    expect(await balance("alice")).toEqual(before); // credited once, available again
    expect(
      await ledger.getTransfer(transferId(depositTransferName(CHAIN, tx, "tx", 1))),
    ).toBeUndefined();
    const types = await ctx.db.pool.query<{ type: string }>(
      "SELECT type FROM ledger.events WHERE transfer_id = $1 ORDER BY id",
      [creditId],
    );
    expect(types.rows.map((r) => r.type)).toEqual([
      "deposit.credited",
      "deposit.reorg_held",
      "deposit.reorg_restored",
    ]);

    // Reorged out again (a new hold id), and this time its height becomes final without it.
    await setStatus(tx, "0xc2", "orphaned", true);
    expect((await crediting.sweep()).held).toBe(1);
    await setFinalized(11); // below the orphaned block (12): not yet
    expect((await crediting.sweep()).finalized).toBe(0);
    await setFinalized(12);
    expect(await crediting.sweep()).toEqual({ credited: 0, held: 0, restored: 0, finalized: 1 });
    const after = await balance("alice");
    expect(after.creditsPosted - after.debitsPosted).toBe(
      before.creditsPosted - before.debitsPosted - 50n,
    );
    expect(after.debitsPending).toBe(before.debitsPending);
    const second = await ledger.getTransfer(transferId(reorgHoldName(creditId, "hold", 1)));
    expect(second).toMatchObject({ type: "pending", amount: 50n });
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("credits a replacement (same tx and position, smaller amount) as a new deposit and posts the old one's hold at finality", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xd1", number: 20, to: D_BOB, amount: 110n, status: "confirmed" });
    await crediting.sweep();
    expect((await balance("bob")).available).toBe(110n);
    await setStatus(tx, "0xd1", "orphaned", true);
    await fact({ tx, block: "0xd2", number: 20, to: D_BOB, amount: 20n, status: "confirmed" });
    const r = await crediting.sweep();
    expect(r).toMatchObject({ credited: 1, held: 1, restored: 0 });
    expect((await balance("bob")).available).toBe(20n);
    await setFinalized(20);
    expect((await crediting.sweep()).finalized).toBe(1);
    const bob = await balance("bob");
    expect([bob.creditsPosted - bob.debitsPosted, bob.available, bob.debitsPending]).toEqual([
      20n,
      20n,
      0n,
    ]);
    expect(await crediting.sweep()).toEqual({ credited: 0, held: 0, restored: 0, finalized: 0 });
    // Crediting reaches a fact's credits through its deposit transfers' chain reference (migration
    // 0008 dropped the credits' own index): both credits of the identity, the second one named by
    // the count of the first.
    const credits = await ctx.db.pool.query<{ credit_id: string; state: string }>(
      `SELECT d.credit_id::text, d.state FROM ledger.transfers t
         JOIN ledger.deposit_credits d ON d.credit_id = t.id
        WHERE t.chain_id = $1 AND t.tx_hash = $2 AND t.position = 'tx' AND t.kind = 'deposit'
        ORDER BY d.amount DESC`,
      [CHAIN, tx],
    );
    expect(credits.rows).toEqual([
      { credit_id: transferId(depositTransferName(CHAIN, tx, "tx")), state: "final" },
      { credit_id: transferId(depositTransferName(CHAIN, tx, "tx", 1)), state: "credited" },
    ]);
  });

  it("compares recipient, asset and amount, never the position alone", async () => {
    const tx = txHash();
    // Two ERC-20 facts of one tx: the batch payout re-included with the same ordinals but the
    // recipients swapped credits each fact at its own position, once (reconciliation pairs a
    // transfer with each fact): the identity alone is never the same deposit. Each is the return
    // of the other position's held credit (same tx, recipient, asset, amount), which is closed
    // against it in the same sweep (hold posted, nothing left to finalize).
    await fact({
      tx,
      block: "0xe1",
      number: 30,
      position: "transfer:0",
      asset: TOKEN,
      to: D_CAROL,
      amount: 7n,
      status: "confirmed",
    });
    await fact({
      tx,
      block: "0xe1",
      number: 30,
      position: "transfer:1",
      asset: TOKEN,
      to: D_DAVE,
      amount: 9n,
      status: "confirmed",
    });
    expect((await crediting.sweep()).credited).toBe(2);
    await setStatus(tx, "0xe1", "orphaned", true);
    await fact({
      tx,
      block: "0xe2",
      number: 30,
      position: "transfer:0",
      asset: TOKEN,
      to: D_DAVE,
      amount: 9n,
      status: "confirmed",
    });
    await fact({
      tx,
      block: "0xe2",
      number: 30,
      position: "transfer:1",
      asset: TOKEN,
      to: D_CAROL,
      amount: 7n,
      status: "confirmed",
    });
    expect(await crediting.sweep()).toMatchObject({ credited: 2, held: 2, restored: 0 });
    const returned = await ctx.db.pool.query<{ state: string; returned: boolean }>(
      `SELECT state, returned_credit_id IS NOT NULL AS returned FROM ledger.deposit_credits
        WHERE tx_hash = $1 ORDER BY created_at, position`,
      [tx],
    );
    expect(returned.rows.map((r) => [r.state, r.returned])).toEqual([
      ["final", true],
      ["final", true],
      ["credited", false],
      ["credited", false],
    ]);
    await setFinalized(30);
    expect((await crediting.sweep()).finalized).toBe(0);
    for (const [owner, amount] of [
      ["carol", 7n],
      ["dave", 9n],
    ] as const) {
      const b = await ledger.balance({ assetId: TT, name: `user:${owner}` });
      expect([b.creditsPosted - b.debitsPosted, b.available]).toEqual([amount, amount]);
    }
    // Re-included at another height with the same ordinal and recipient: the same deposit.
    const tx2 = txHash();
    await fact({
      tx: tx2,
      block: "0xe3",
      number: 31,
      position: "transfer:0",
      asset: TOKEN,
      to: D_CAROL,
      amount: 5n,
      status: "confirmed",
    });
    await crediting.sweep();
    await setStatus(tx2, "0xe3", "orphaned", true);
    await fact({
      tx: tx2,
      block: "0xe4",
      number: 32,
      position: "transfer:0",
      asset: TOKEN,
      to: D_CAROL,
      amount: 5n,
      status: "confirmed",
    });
    // Already confirmed again when crediting looks: nothing to hold, nothing to credit.
    expect(await crediting.sweep()).toEqual({ credited: 0, held: 0, restored: 0, finalized: 0 });
    expect((await ledger.balance({ assetId: TT, name: "user:carol" })).available).toBe(12n);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("holds what is available when the customer already spent the deposit: receivable, withdrawals blocked, alert", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xf1", number: 40, to: D_ERIN, amount: 150n, status: "confirmed" });
    await crediting.sweep();
    // Erin withdraws 140 of it (the withdrawal pipeline's hold).
    await ledger.hold({
      id: transferId("withdrawal:erin-1"),
      assetId: ETH,
      debit: "user:erin",
      credit: `custody:hot:${HOT}`,
      amount: 140n,
      kind: "withdrawal",
    });
    const alerts = () =>
      ctx.common.metrics.registry.getSingleMetricAsString("custody_ledger_reorg_shortfalls_total");
    await setStatus(tx, "0xf1", "orphaned", true);
    expect((await crediting.sweep()).held).toBe(1);
    const erin = await balance("erin");
    expect(erin.available).toBe(0n);
    const receivable = await ledger.balance({ assetId: ETH, name: "receivable:reorg:erin" });
    expect(receivable.debitsPending).toBe(140n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "erin")).toBe(true);
    expect(await alerts()).toMatch(
      /custody_ledger_reorg_shortfalls_total\{chain_id="31337"[^}]*\} 1/,
    );
    // Final without it: both parts posted, the receivable stands and the block stays.
    await setFinalized(40);
    expect((await crediting.sweep()).finalized).toBe(1);
    expect(
      (await ledger.balance({ assetId: ETH, name: "receivable:reorg:erin" })).debitsPosted,
    ).toBe(140n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "erin")).toBe(true);
    expect((await ledger.check()).problems).toEqual([]);

    // The operator lists and clears the block (who and why are kept).
    const operatorCli = chainCli({ databaseUrl: ctx.db.url, chain: ctx.config.chains[0]! });
    try {
      const cli = operatorCli.run;
      const list = await cli(["ledger", "withdrawal-blocks", "list"]);
      expect(list.code, list.out).toBe(0);
      expect(list.out).toMatch(/\terin\treorg_shortfall\t/);
      const clear = await cli([
        "ledger",
        "withdrawal-blocks",
        "clear",
        "erin",
        "--by",
        "ops-anna",
        "--reason",
        "repaid 140",
      ]);
      expect(clear.code, clear.out).toBe(0);
      expect(clear.out).toContain("cleared 1 block(s) of erin");
      expect(await isWithdrawalBlocked(ctx.db.pool, "erin")).toBe(false);
      const audit = await ctx.db.pool.query(
        "SELECT cleared_by, clear_reason FROM ledger.withdrawal_blocks WHERE customer_id = 'erin'",
      );
      expect(audit.rows).toEqual([{ cleared_by: "ops-anna", clear_reason: "repaid 140" }]);
      expect(
        (await cli(["ledger", "withdrawal-blocks", "clear", "erin", "--by", "x", "--reason", "y"]))
          .code,
      ).toBe(1);
    } finally {
      operatorCli.remove();
    }
  });

  it("lifts the block when the spent deposit confirms again", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xf2", number: 50, to: D_FRANK, amount: 80n, status: "confirmed" });
    await crediting.sweep();
    await ledger.hold({
      id: transferId("withdrawal:frank-1"),
      assetId: ETH,
      debit: "user:frank",
      credit: `custody:hot:${HOT}`,
      amount: 80n,
      kind: "withdrawal",
    });
    await setStatus(tx, "0xf2", "orphaned", true);
    expect((await crediting.sweep()).held).toBe(1);
    expect(await isWithdrawalBlocked(ctx.db.pool, "frank")).toBe(true);
    await fact({ tx, block: "0xf3", number: 51, to: D_FRANK, amount: 80n, status: "confirmed" });
    expect((await crediting.sweep()).restored).toBe(1);
    expect(await isWithdrawalBlocked(ctx.db.pool, "frank")).toBe(false);
    expect(
      (await ledger.balance({ assetId: ETH, name: "receivable:reorg:frank" })).debitsPending,
    ).toBe(0n);
    expect((await balance("frank")).creditsPosted).toBe(80n);
  });

  it("a reorg hold whose first COMMIT fails with a serialization failure is told once: one shortfall alert, one log line", async () => {
    const D_GINA = `0x${"d7".repeat(20)}`;
    await ctx.db.pool.query(
      "INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'deposit', 'gina')",
      [CHAIN, D_GINA],
    );
    // Its own worker: a registry and a log the assertions read.
    const lines: Record<string, unknown>[] = [];
    const worker = {
      ...ctx.common,
      metrics: createMetrics({ defaults: false }),
      logger: createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line)) }),
    };
    const ginaCrediting = createDepositCrediting({ common: worker, pool: ctx.db.pool, ledger });
    const tx = txHash();
    await fact({ tx, block: "0xf7", number: 60, to: D_GINA, amount: 150n, status: "confirmed" });
    await ginaCrediting.sweep();
    await ledger.hold({
      id: transferId("withdrawal:gina-1"),
      assetId: ETH,
      debit: "user:gina",
      credit: `custody:hot:${HOT}`,
      amount: 140n,
      kind: "withdrawal",
    });
    await setStatus(tx, "0xf7", "orphaned", true);
    // Postgres fails the first COMMIT that holds gina's credit with 40001 (a deferred trigger, as
    // SERIALIZABLE's commit-time check would): withTransaction retries the pass.
    await ctx.db.pool.query(`
      CREATE SEQUENCE public.fail_once;
      CREATE FUNCTION public.fail_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('public.fail_once') = 1 THEN
          RAISE EXCEPTION 'could not serialize access (test)' USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER fail_first_commit AFTER UPDATE ON ledger.deposit_credits
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.state = 'held' AND NEW.tx_hash = '${tx}')
        EXECUTE FUNCTION public.fail_first_commit();`);
    try {
      expect((await ginaCrediting.sweep()).held).toBe(1);
      const { rows } = await ctx.db.pool.query<{ n: string }>(
        "SELECT last_value::text AS n FROM public.fail_once",
      );
      expect(rows[0]!.n).toBe("2"); // the first commit failed, the retry committed
    } finally {
      await ctx.db.pool.query(
        "DROP TRIGGER fail_first_commit ON ledger.deposit_credits; DROP FUNCTION public.fail_first_commit(); DROP SEQUENCE public.fail_once",
      );
    }
    expect(
      (await ledger.balance({ assetId: ETH, name: "receivable:reorg:gina" })).debitsPending,
    ).toBe(140n);
    const counted = async (name: string) =>
      ((await worker.metrics.registry.getSingleMetric(name)?.get())?.values ?? [])
        .filter((v) => v.labels.chain_id === String(CHAIN))
        .filter((v) => name !== "custody_ledger_reorg_holds_total" || v.labels.action === "placed")
        .reduce((sum, v) => sum + v.value, 0);
    expect(await counted("custody_ledger_reorg_shortfalls_total")).toBe(1);
    expect(await counted("custody_ledger_reorg_holds_total")).toBe(1);
    expect(lines.filter((l) => l.alert === "reorg_shortfall").length).toBe(1);
    expect(
      lines.filter((l) => l.msg === "credited deposit orphaned by a reorg: reorg hold placed")
        .length,
    ).toBe(1);
  });

  it("parks 600 deposits in a row the ledger refuses and credits the good ones behind them; retries the parked ones until the ledger takes them", async () => {
    // A token the indexer records but the ledger does not list yet: every credit of it is refused
    // (LEDGER_UNKNOWN_ASSET). Before parking, 500 such facts oldest-first stopped the chain's crediting.
    const UNLISTED = `0x${"7a".repeat(20)}`;
    const retrying = createDepositCrediting({
      common: ctx.common,
      pool: ctx.db.pool,
      ledger,
      parkedRetryMs: 20,
    });
    await ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
         asset, from_address, to_address, amount, status)
       SELECT $1, 60 + i / 100, '0xbad' || (i / 100), '0x' || lpad(to_hex(1000000 + i), 64, '0'), i % 100,
         'transfer:0', 'erc20', $2, $3, $4, 3, 'confirmed'
         FROM generate_series(0, 599) AS i`,
      [CHAIN, UNLISTED, `0x${"ee".repeat(20)}`, D_BOB],
    );
    const good = [txHash(), txHash(), txHash()];
    for (const tx of good)
      await fact({ tx, block: "0x900d", number: 70, to: D_FRANK, amount: 4n, status: "confirmed" });
    const frankBefore = await userBalance("frank");

    expect((await retrying.sweep({ chainId: CHAIN })).credited).toBe(3);
    expect(await userBalance("frank")).toBe(frankBefore + 12n);
    const parked = await retrying.parked({ chainId: CHAIN, limit: 1000 });
    expect(parked).toHaveLength(600);
    expect(new Set(parked.map((p) => p.code))).toEqual(new Set(["LEDGER_UNKNOWN_ASSET"]));
    expect(parked[0]).toMatchObject({ asset: UNLISTED, owner: "bob", amount: 3n });
    // Operators see them, with the ledger's reason; a bad flag is refused with its name.
    const operatorCli = chainCli({ databaseUrl: ctx.db.url, chain: ctx.config.chains[0]! });
    try {
      const { env } = operatorCli;
      const listed = spawnCli(
        ["ledger", "parked-deposits", "--chain", String(CHAIN), "--limit", "5"],
        env,
      );
      expect((await listed.exited).code, listed.output()).toBe(0);
      const lines = listed.output().trim().split("\n");
      expect(lines).toHaveLength(5);
      for (const line of lines) {
        const cols = line.split("\t");
        expect(cols.slice(4, 8)).toEqual(["bob", UNLISTED, "3", "LEDGER_UNKNOWN_ASSET"]);
      }
      const bad = spawnCli(["ledger", "parked-deposits", "--chain", "x"], env);
      expect((await bad.exited).code).toBe(2);
      expect(bad.output()).toContain("--chain must be a positive integer");
    } finally {
      operatorCli.remove();
    }

    // Still refused on retry: attempts counted, nothing credited, nothing lost.
    const again = await waitFor("a retry of the parked deposits", async () => {
      await retrying.sweep({ chainId: CHAIN });
      const p = await retrying.parked({ chainId: CHAIN, limit: 1000 });
      return p.every((x) => x.attempts >= 2) && p;
    });
    expect(again).toHaveLength(600);

    // Once the ledger lists the token, the parked deposits are credited, each once.
    await ledger.ensureAsset({
      chainId: CHAIN,
      token: UNLISTED as `0x${string}`,
      symbol: "UN",
      decimals: 18,
    });
    await waitFor("the parked deposits credited", async () => {
      await retrying.sweep({ chainId: CHAIN });
      return (await retrying.parked({ chainId: CHAIN })).length === 0;
    });
    const bob = await ledger.balance({ assetId: `${CHAIN}:${UNLISTED}`, name: "user:bob" });
    expect(bob.creditsPosted).toBe(1800n);
    expect((await retrying.sweep({ chainId: CHAIN })).credited).toBe(0);
    expect((await ledger.check()).problems).toEqual([]);
    // The watermark stands at the newest confirmed block: the next pass reads only blocks above it.
    const w = await ctx.db.pool.query(
      "SELECT block_number::int AS n FROM ledger.crediting_watermarks WHERE chain_id = $1",
      [CHAIN],
    );
    const top = await ctx.db.pool.query(
      "SELECT max(block_number)::int AS n FROM chain.transfers WHERE chain_id = $1 AND status = 'confirmed'",
      [CHAIN],
    );
    expect(w.rows[0].n).toBe(top.rows[0].n);
  });

  it("drops a parked deposit whose fact a reorg removed, crediting nothing", async () => {
    const OTHER = `0x${"7b".repeat(20)}`;
    const retrying = createDepositCrediting({
      common: ctx.common,
      pool: ctx.db.pool,
      ledger,
      parkedRetryMs: 20,
    });
    const tx = txHash();
    await fact({
      tx,
      block: "0xbee1",
      number: 80,
      asset: OTHER,
      position: "transfer:0",
      kind: "erc20",
      to: D_CAROL,
      amount: 9n,
      status: "confirmed",
    });
    await retrying.sweep({ chainId: CHAIN });
    expect((await retrying.parked({ chainId: CHAIN })).map((p) => p.txHash)).toEqual([tx]);
    await setStatus(tx, "0xbee1", "orphaned", true);
    await waitFor("the orphaned fact's parked row gone", async () => {
      await retrying.sweep({ chainId: CHAIN });
      return (await retrying.parked({ chainId: CHAIN })).length === 0;
    });
    expect(
      await ctx.db.pool.query("SELECT 1 FROM ledger.deposit_credits WHERE tx_hash = $1", [tx]),
    ).toMatchObject({ rowCount: 0 });
  });

  it("each worker's parked gauge drops to 0 once another worker credits the parked deposit", async () => {
    // Every worker sweeps every chain and exports its own gauge; the alert reads the highest. A
    // worker that parked a deposit another worker credited later kept exporting 1 for ever.
    const LATE = `0x${"7c".repeat(20)}`;
    const parkedGauge = async (common: typeof ctx.common) => {
      const metric = common.metrics.registry.getSingleMetric("custody_ledger_parked_deposits");
      const values = (await metric?.get())?.values ?? [];
      return values.find((v) => v.labels.chain_id === String(CHAIN))?.value;
    };
    const workerA = { ...ctx.common, metrics: createMetrics({ defaults: false }) };
    const workerB = { ...ctx.common, metrics: createMetrics({ defaults: false }) };
    const a = createDepositCrediting({
      common: workerA,
      pool: ctx.db.pool,
      ledger,
      parkedRetryMs: 20,
    });
    const b = createDepositCrediting({
      common: workerB,
      pool: ctx.db.pool,
      ledger,
      parkedRetryMs: 20,
    });
    await a.sweep({ chainId: CHAIN });
    await b.sweep({ chainId: CHAIN });
    expect([await parkedGauge(workerA), await parkedGauge(workerB)]).toEqual([0, 0]);

    await fact({
      tx: txHash(),
      block: "0x1a7e",
      number: 90,
      asset: LATE,
      position: "transfer:0",
      kind: "erc20",
      to: D_DAVE,
      amount: 7n,
      status: "confirmed",
    });
    await a.sweep({ chainId: CHAIN });
    expect(await parkedGauge(workerA)).toBe(1);

    // The token gets listed; worker B's retry credits the deposit.
    await ledger.ensureAsset({
      chainId: CHAIN,
      token: LATE as `0x${string}`,
      symbol: "LT",
      decimals: 18,
    });
    await waitFor("worker B credits the parked deposit", async () => {
      await b.sweep({ chainId: CHAIN });
      return (await b.parked({ chainId: CHAIN })).length === 0;
    });
    expect(await parkedGauge(workerB)).toBe(0);
    await a.sweep({ chainId: CHAIN });
    expect(await parkedGauge(workerA)).toBe(0);
  });

  it("an operator makes parked deposits due now (one, or a chain's), audited: the next pass credits them, not the next scheduled retry", async () => {
    // Once the cause is fixed the deposit would wait for its next retry, up to an hour later.
    const HELD_BACK = `0x${"7d".repeat(20)}`;
    const hourly = createDepositCrediting({
      common: ctx.common,
      pool: ctx.db.pool,
      ledger,
      parkedRetryMs: 3_600_000,
    });
    const [one, other] = [txHash(), txHash()];
    for (const tx of [one, other])
      await fact({
        tx,
        block: "0xd0e",
        number: 95,
        asset: HELD_BACK,
        position: "transfer:0",
        kind: "erc20",
        to: D_DAVE,
        amount: 6n,
        status: "confirmed",
      });
    const daveBalance = async () =>
      (await ledger.getAccount({ assetId: `${CHAIN}:${HELD_BACK}`, name: "user:dave" }))
        ?.creditsPosted ?? 0n;
    const parkedTxs = async () =>
      (await hourly.parked({ chainId: CHAIN })).filter((p) => p.asset === HELD_BACK);
    await hourly.sweep({ chainId: CHAIN });
    expect((await parkedTxs()).map((p) => p.txHash).sort()).toEqual([one, other].sort());
    // The cause is fixed; the scheduled retry is still an hour away, so a pass credits nothing.
    await ledger.ensureAsset({
      chainId: CHAIN,
      token: HELD_BACK as `0x${string}`,
      symbol: "HB",
      decimals: 18,
    });
    expect((await hourly.sweep({ chainId: CHAIN })).credited).toBe(0);
    expect(await daveBalance()).toBe(0n);

    const operatorCli = chainCli({ databaseUrl: ctx.db.url, chain: ctx.config.chains[0]! });
    try {
      const retry = (args: string[]) =>
        operatorCli.run(["ledger", "parked-deposits", "retry", "--chain", String(CHAIN), ...args]);
      // Who and why are required and recorded; a deposit that is not parked is said so.
      const noReason = await retry([`${one}:transfer:0`, "--by", "ops-ann", "--reason", " "]);
      expect(noReason.code, noReason.out).toBe(1);
      expect(noReason.out).toContain("--reason must not be empty");
      const notParked = await retry([`${one}:tx`, "--by", "ops-ann", "--reason", "token listed"]);
      expect(notParked.code, notParked.out).toBe(1);
      expect(notParked.out).toContain("no parked deposit");
      const badRef = await retry(["0x12:tx", "--by", "ops-ann", "--reason", "token listed"]);
      expect(badRef.code, badRef.out).toBe(2);

      // One deposit: due now, credited by the next pass; the other still waits for its retry.
      const single = await retry([`${one}:transfer:0`, "--by", "ops-ann", "--reason", "HB listed"]);
      expect(single.code, single.out).toBe(0);
      expect(single.out).toContain(`${one}\ttransfer:0`);
      expect((await hourly.sweep({ chainId: CHAIN })).credited).toBe(1);
      expect(await daveBalance()).toBe(6n);
      expect((await parkedTxs()).map((p) => p.txHash)).toEqual([other]);

      // The chain's: every parked deposit of it.
      const all = await retry(["--by", "ops-ann", "--reason", "HB listed, the rest"]);
      expect(all.code, all.out).toBe(0);
      expect((await hourly.sweep({ chainId: CHAIN })).credited).toBe(1);
      expect(await daveBalance()).toBe(12n);
      expect(await parkedTxs()).toEqual([]);
    } finally {
      operatorCli.remove();
    }
    const audit = await listAudit(ctx.db.pool, {
      actionPrefix: "ledger.parked_deposits.",
      limit: 10,
    });
    expect(audit.map((a) => [a.actor, a.action, a.entityType, a.entityId, a.details])).toEqual([
      [
        "ops-ann",
        "ledger.parked_deposits.due_now",
        "chain",
        String(CHAIN),
        { reason: "HB listed", deposits: [`${one}:transfer:0`] },
      ],
      [
        "ops-ann",
        "ledger.parked_deposits.due_now",
        "chain",
        String(CHAIN),
        { reason: "HB listed, the rest", deposits: [`${other}:transfer:0`] },
      ],
    ]);
    expect((await ledger.check()).problems).toEqual([]);
  });
});

describe("catch-up pass and incremental reorg holds", () => {
  const watermarks = async () =>
    (
      await ctx.db.pool.query<{
        block_number: string;
        catchup_block: string;
        holds_reorg_id: string;
      }>(
        "SELECT block_number::text, catchup_block::text, holds_reorg_id::text FROM ledger.crediting_watermarks WHERE chain_id = $1",
        [CHAIN],
      )
    ).rows[0]!;
  const catchupCounted = async () => {
    const metric = ctx.common.metrics.registry.getSingleMetric(
      "custody_crediting_catchup_credits_total",
    );
    if (metric === undefined)
      throw new Error("custody_crediting_catchup_credits_total not registered");
    const values = (await metric.get()).values;
    return values.find((v) => v.labels.chain_id === String(CHAIN))?.value ?? 0;
  };

  it("credits a confirmed deposit a late writer put below the watermark exactly once, counts it, and never again", async () => {
    // The watermark past block 200, the usual way.
    await fact({
      tx: txHash(),
      block: "0xca0",
      number: 200,
      to: D_ERIN,
      amount: 5n,
      status: "confirmed",
    });
    await crediting.sweep({ chainId: CHAIN });
    const watermark = BigInt((await watermarks()).block_number);
    expect(watermark).toBeGreaterThanOrEqual(200n);
    const counted = await catchupCounted();
    const erin = await userBalance("erin");

    // A late writer: a confirmed deposit into block 150, no reorg recorded.
    const late = txHash();
    await fact({
      tx: late,
      block: "0xca1",
      number: 150,
      to: D_ERIN,
      amount: 7n,
      status: "confirmed",
    });
    expect(await crediting.creditNew({ chainId: CHAIN })).toEqual({ credited: 0, done: true });
    expect(await userBalance("erin")).toBe(erin); // the watermark never looks back

    // Steps of at most 40 blocks; a full turn of the rotation (from wherever the cursor is) finds it.
    const turn = Number(watermark) / 40 + 2;
    const walk = async () => {
      let credited = 0;
      for (let i = 0; i < turn; i++) {
        const step = await crediting.catchUp({ chainId: CHAIN, maxBlocks: 40 });
        expect(step.to - step.from + 1n).toBeLessThanOrEqual(40n);
        expect(step.to).toBeLessThanOrEqual(watermark);
        credited += step.credited;
      }
      return credited;
    };
    expect(await walk()).toBe(1);
    expect(await userBalance("erin")).toBe(erin + 7n);
    expect(await catchupCounted()).toBe(counted + 1);
    const credit = await ledger.getTransfer(transferId(depositTransferName(CHAIN, late, "tx")));
    expect(credit).toMatchObject({ kind: "deposit", amount: 7n, chainRef: { txHash: late } });

    // Another full turn, and periodic sweeps (which run a catch-up step each): no second credit.
    expect(await walk()).toBe(0);
    for (let i = 0; i < 3; i++)
      expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(0);
    expect(await userBalance("erin")).toBe(erin + 7n);
    expect(await catchupCounted()).toBe(counted + 1);
    const rows = await ctx.db.pool.query(
      "SELECT 1 FROM ledger.deposit_credits WHERE tx_hash = $1",
      [late],
    );
    expect(rows.rowCount).toBe(1);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("catch-up compares recipient, asset and amount, never the identity alone: another amount at a credited tx and position below the watermark is credited", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xcb0", number: 210, to: D_ERIN, amount: 9n, status: "confirmed" });
    await crediting.sweep({ chainId: CHAIN });
    const watermark = BigInt((await watermarks()).block_number);
    expect(watermark).toBeGreaterThanOrEqual(210n);
    const erin = await userBalance("erin");
    // A late writer puts the same tx and position, paying 4, into block 160: the identity has a
    // standing credit (the 9), but not of this deposit.
    await fact({ tx, block: "0xcb1", number: 160, to: D_ERIN, amount: 4n, status: "confirmed" });
    const walk = async () => {
      let credited = 0;
      for (let i = 0; i < Number(watermark) / 40 + 2; i++)
        credited += (await crediting.catchUp({ chainId: CHAIN, maxBlocks: 40 })).credited;
      return credited;
    };
    expect(await walk()).toBe(1);
    expect(await userBalance("erin")).toBe(erin + 4n);
    expect(
      await ledger.getTransfer(transferId(depositTransferName(CHAIN, tx, "tx", 1))),
    ).toMatchObject({ kind: "deposit", amount: 4n });
    expect(await walk()).toBe(0);
    expect(await userBalance("erin")).toBe(erin + 4n);
  });

  it("cuts a catch-up step at its fact budget, however wide the block window", async () => {
    const count = async (from: bigint, to: bigint) =>
      Number(
        (
          await ctx.db.pool.query<{ n: string }>(
            "SELECT count(*)::text AS n FROM chain.transfers WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3",
            [CHAIN, from.toString(), to.toString()],
          )
        ).rows[0]!.n,
      );
    const watermark = BigInt((await watermarks()).block_number);
    expect(await count(0n, watermark)).toBeGreaterThan(20); // the whole history is over budget
    let steps = 0;
    let covered = 0n;
    while (covered <= watermark) {
      if (++steps > 200) throw new Error("the catch-up rotation did not make a turn in 200 steps");
      const step = await crediting.catchUp({ chainId: CHAIN, maxBlocks: 1_000_000, maxFacts: 10 });
      expect(step.to).toBeGreaterThanOrEqual(step.from);
      // At most 10 facts, unless the step is a single block holding more.
      if (step.to > step.from) expect(await count(step.from, step.to)).toBeLessThanOrEqual(10);
      covered += step.to - step.from + 1n;
    }
    expect(steps).toBeGreaterThan(2);
  });

  it("cuts the window in block order, not in the text order of block numbers", async () => {
    const OTHER_CHAIN = 424_242; // no deposit addresses: nothing to credit, only the window is read
    for (const n of [9, 10, 100, 1000])
      for (let i = 0; i < 3; i++)
        await ctx.db.pool.query(
          `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
             asset, from_address, to_address, amount, status)
           VALUES ($1, $2, $3, $4, $5, 'tx', 'native', $6, $7, $7, 1, 'confirmed')`,
          [OTHER_CHAIN, n, `0xo${n}`, txHash(), i, ZERO, HOT],
        );
    await ctx.db.pool.query(
      "INSERT INTO ledger.crediting_watermarks (chain_id, block_number) VALUES ($1, 2000)",
      [OTHER_CHAIN],
    );
    const windows: [bigint, bigint][] = [];
    for (let i = 0; i < 4; i++) {
      const step = await crediting.catchUp({ chainId: OTHER_CHAIN, maxBlocks: 5_000, maxFacts: 4 });
      windows.push([step.from, step.to]);
    }
    // Blocks 9 and 10 hold 6 facts: the first window stops before block 10, and so on.
    expect(windows).toEqual([
      [0n, 9n],
      [10n, 99n],
      [100n, 999n],
      [1000n, 2000n],
    ]);
  });

  it("refuses a catch-up window that is not a positive number of blocks, in code and in the chain config", async () => {
    await expect(crediting.catchUp({ chainId: CHAIN, maxBlocks: 0 })).rejects.toThrow(/maxBlocks/);
    await expect(crediting.catchUp({ chainId: CHAIN, maxFacts: 1.5 })).rejects.toThrow(/maxFacts/);
    const dir = mkdtempSync(path.join(tmpdir(), "catchup-config-"));
    try {
      const file = path.join(dir, "config.json");
      const config = JSON.parse(readFileSync(defaultConfigPath, "utf8"));
      config.chains[0].creditingCatchupBlocks = 0;
      writeFileSync(file, JSON.stringify(config));
      let issues: { field: string; message: string }[] = [];
      try {
        loadConfig(chainSchema, { CUSTODY_CONFIG: file });
      } catch (error) {
        issues = (error as ConfigError).issues;
      }
      expect(issues.map((i) => i.field)).toEqual(["config.json.chains.0.creditingCatchupBlocks"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("moves the reorg-hold watermark only past a pass that read everything (a full page is read again)", async () => {
    const txs = [txHash(), txHash()];
    await fact({
      tx: txs[0]!,
      block: "0xcc0",
      number: 400,
      to: D_DAVE,
      amount: 3n,
      status: "confirmed",
    });
    await fact({
      tx: txs[1]!,
      block: "0xcc1",
      number: 401,
      to: D_DAVE,
      amount: 4n,
      status: "confirmed",
    });
    expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(2);
    const before = (await watermarks()).holds_reorg_id;
    await setStatus(txs[0]!, "0xcc0", "orphaned", true);
    await setStatus(txs[1]!, "0xcc1", "orphaned", true);
    const newest = (
      await ctx.db.pool.query<{ id: string }>(
        "SELECT max(id)::text AS id FROM chain.reorgs WHERE chain_id = $1",
        [CHAIN],
      )
    ).rows[0]!.id;
    expect(newest).not.toBe(before);
    expect(await crediting.holdOrphaned({ chainId: CHAIN, limit: 1 })).toBe(1);
    expect((await watermarks()).holds_reorg_id).toBe(before); // a full page: maybe more
    expect(await crediting.holdOrphaned({ chainId: CHAIN, limit: 1 })).toBe(1);
    expect((await watermarks()).holds_reorg_id).toBe(before);
    expect(await crediting.holdOrphaned({ chainId: CHAIN, limit: 1 })).toBe(0);
    expect((await watermarks()).holds_reorg_id).toBe(newest);
    const states = await ctx.db.pool.query<{ state: string }>(
      "SELECT state FROM ledger.deposit_credits WHERE tx_hash = ANY($1::text[])",
      [txs],
    );
    expect(states.rows.map((r) => r.state)).toEqual(["held", "held"]);
    expect(await crediting.holdOrphaned({ chainId: CHAIN })).toBe(0);
  });

  it("holds a credit whose re-mined copy a later reorg orphans, reading only reorgs since its watermark", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xcb0", number: 300, to: D_FRANK, amount: 30n, status: "confirmed" });
    expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(1);
    // Orphaned, and the same deposit already confirmed again higher up before any pass: no hold.
    await setStatus(tx, "0xcb0", "orphaned", true);
    await fact({ tx, block: "0xcb1", number: 310, to: D_FRANK, amount: 30n, status: "confirmed" });
    expect(await crediting.sweep({ chainId: CHAIN })).toEqual({
      credited: 0,
      held: 0,
      restored: 0,
      finalized: 0,
    });
    const newest = await ctx.db.pool.query<{ id: string }>(
      "SELECT max(id)::text AS id FROM chain.reorgs WHERE chain_id = $1",
      [CHAIN],
    );
    expect((await watermarks()).holds_reorg_id).toBe(newest.rows[0]!.id);
    // The copy is orphaned by a reorg whose common ancestor (309) is above the credit's block (300).
    await setStatus(tx, "0xcb1", "orphaned", true);
    expect((await crediting.sweep({ chainId: CHAIN })).held).toBe(1);
    const creditId = transferId(depositTransferName(CHAIN, tx, "tx"));
    expect(await ledger.getTransfer(transferId(reorgHoldName(creditId, "hold")))).toMatchObject({
      type: "pending",
      amount: 30n,
    });
    const state = await ctx.db.pool.query<{ state: string; orphaned_block: string }>(
      "SELECT state, orphaned_block::text FROM ledger.deposit_credits WHERE credit_id = $1",
      [creditId],
    );
    expect(state.rows).toEqual([{ state: "held", orphaned_block: "310" }]);
    expect((await crediting.sweep({ chainId: CHAIN })).held).toBe(0);
  });
});

describe("a block of new deposits in few statements (issue 15)", () => {
  // A chain of its own: its watermark and facts meet no other test's.
  const C2 = 31_339;
  const C2_ETH = `${C2}:${ZERO}`;
  const addr = (i: number) => `0x${"e7".repeat(19)}${i.toString(16).padStart(2, "0")}`;
  let block = 1_000;
  const blockOf = async (amounts: bigint[]) => {
    const number = ++block;
    const hash = `0xc2${number.toString(16)}`;
    const txs: string[] = [];
    for (const [i, amount] of amounts.entries()) {
      const tx = txHash();
      txs.push(tx);
      await ctx.db.pool.query(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
           asset, from_address, to_address, amount, status)
         VALUES ($1, $2, $3, $4, $5, 'tx', 'native', $6, $7, $8, $9, 'confirmed')`,
        [C2, number, hash, tx, i, ZERO, `0x${"ee".repeat(20)}`, addr(i % 4), amount.toString()],
      );
    }
    return { number, hash, txs };
  };
  const c2Balance = async (owner: string) =>
    (await ledger.getAccount({ assetId: C2_ETH, name: `user:${owner}` }))?.creditsPosted ?? 0n;
  const watermark = async () =>
    (
      await ctx.db.pool.query<{ n: string }>(
        "SELECT block_number::text AS n FROM ledger.crediting_watermarks WHERE chain_id = $1",
        [C2],
      )
    ).rows[0]?.n;

  beforeAll(async () => {
    await ledger.ensureAsset({ chainId: C2, token: ZERO, symbol: "ETH", decimals: 18 });
    for (let i = 0; i < 4; i++)
      await ctx.db.pool.query(
        "INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'deposit', $3)",
        [C2, addr(i), `c2-${i}`],
      );
  });

  it("credits a block of exactly `limit` deposits in one watermark step, and a fuller one in two without skipping any", async () => {
    // A chain seen for the first time gets its watermark row inside the pass.
    expect(await watermark()).toBeUndefined();
    expect(await crediting.creditNew({ chainId: C2, limit: 3 })).toEqual({
      credited: 0,
      done: true,
    });
    expect(await watermark()).toBe("-1");
    const full = await blockOf([1n, 2n, 3n]);
    expect(await crediting.creditNew({ chainId: C2, limit: 3 })).toEqual({
      credited: 3,
      done: true,
    });
    expect(await watermark()).toBe(String(full.number));
    const fuller = await blockOf([10n, 20n, 30n, 40n]);
    expect(await crediting.creditNew({ chainId: C2, limit: 3 })).toEqual({
      credited: 3,
      done: false,
    });
    // The page ended inside the block: the watermark stays below it.
    expect(await watermark()).toBe(String(fuller.number - 1));
    expect(await crediting.creditNew({ chainId: C2, limit: 3 })).toEqual({
      credited: 1,
      done: true,
    });
    expect(await watermark()).toBe(String(fuller.number));
    expect(await c2Balance("c2-0")).toBe(1n + 10n);
    expect(await c2Balance("c2-1")).toBe(2n + 20n);
    expect(await c2Balance("c2-2")).toBe(3n + 30n);
    expect(await c2Balance("c2-3")).toBe(40n);
    const credits = await ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger.deposit_credits WHERE chain_id = $1",
      [C2],
    );
    expect(credits.rows[0]!.n).toBe(7);
  });

  it("writes each deposit.credited event with the fact's payload, in fact order", async () => {
    const b = await blockOf([5n, 6n]);
    expect(
      (await crediting.sweep({ chainId: C2, fromBlock: b.number, toBlock: b.number })).credited,
    ).toBe(2);
    const ids = b.txs.map((tx) => transferId(depositTransferName(C2, tx, "tx")));
    const ev = await ctx.db.pool.query<{ transfer_id: string; payload: unknown }>(
      "SELECT transfer_id::text, payload FROM ledger.events WHERE type = 'deposit.credited' AND transfer_id = ANY($1::uuid[]) ORDER BY id",
      [ids],
    );
    expect(ev.rows).toEqual(
      b.txs.map((tx, i) => ({
        transfer_id: ids[i],
        payload: {
          chain_id: C2,
          tx_hash: tx,
          position: "tx",
          block_hash: b.hash,
          block_number: String(b.number),
          to_address: addr(i),
          asset_id: C2_ETH,
          amount: String([5n, 6n][i]),
          owner: `c2-${i}`,
        },
      })),
    );
  });

  it("books a deposit whose ledger transfer exists already as credited once: no second transfer, no event", async () => {
    const b = await blockOf([7n, 8n]);
    // The first deposit's transfer was written without its credit row (as the scale seed does).
    const firstId = transferId(depositTransferName(C2, b.txs[0]!, "tx"));
    await ledger.createTransfers([
      {
        id: firstId,
        assetId: C2_ETH,
        debit: "custody:deposits",
        credit: "user:c2-0",
        amount: 7n,
        kind: "deposit",
        chainRef: { chainId: C2, txHash: b.txs[0]!, position: "tx" },
      },
    ]);
    const before = await c2Balance("c2-0");
    const r = await crediting.sweep({ chainId: C2, fromBlock: b.number, toBlock: b.number });
    expect(r.credited).toBe(1); // the second deposit only
    expect(await c2Balance("c2-0")).toBe(before);
    expect(await c2Balance("c2-1")).toBe(2n + 20n + 6n + 8n);
    const rows = await ctx.db.pool.query<{ credit_id: string; events: number }>(
      `SELECT d.credit_id::text, (SELECT count(*)::int FROM ledger.events e WHERE e.transfer_id = d.credit_id) AS events
         FROM ledger.deposit_credits d WHERE d.chain_id = $1 AND d.block_number = $2 ORDER BY d.amount`,
      [C2, b.number],
    );
    expect(rows.rows).toEqual([
      { credit_id: firstId, events: 0 },
      { credit_id: transferId(depositTransferName(C2, b.txs[1]!, "tx")), events: 1 },
    ]);
    expect((await crediting.sweep({ chainId: C2 })).credited).toBe(0);
  });

  it("the ledger's expectNew answers exactly as its ordinary path: exists, the sticky failure, created", async () => {
    const existing = {
      id: transferId(`expect-new-test:existing:${txCounter}`),
      assetId: C2_ETH,
      debit: "custody:deposits",
      credit: "user:c2-3",
      amount: 4n,
      kind: "deposit" as const,
    };
    const overdraft = {
      id: transferId(`expect-new-test:overdraft:${txCounter}`),
      assetId: C2_ETH,
      debit: "user:c2-3",
      credit: "custody:deposits",
      amount: 1_000_000n,
      kind: "withdrawal" as const,
    };
    expect((await ledger.createTransfers([existing]))[0]!.status).toBe("created");
    expect((await ledger.createTransfers([overdraft]))[0]).toMatchObject({
      status: "failed",
      code: "LEDGER_INSUFFICIENT_BALANCE",
    });
    const fresh = { ...existing, id: transferId(`expect-new-test:fresh:${txCounter}`), amount: 2n };
    const before = await c2Balance("c2-3");
    for (const useClient of [false, true]) {
      const batch = [existing, overdraft, fresh];
      const results = useClient
        ? await (async () => {
            const client = await ctx.db.pool.connect();
            try {
              await client.query("BEGIN");
              const out = await ledger.createTransfers(batch, { client, expectNew: true });
              await client.query("COMMIT");
              return out;
            } finally {
              client.release();
            }
          })()
        : await ledger.createTransfers(batch, { expectNew: true });
      expect(results.map((r) => r.status)).toEqual([
        "exists",
        "failed",
        useClient ? "exists" : "created",
      ]);
      expect(results[1]).toMatchObject({ code: "LEDGER_INSUFFICIENT_BALANCE" });
    }
    // The fresh transfer applied once, the existing one not again.
    expect(await c2Balance("c2-3")).toBe(before + 2n);
  });

  it("a watermark step over a block with a credited deposit credits the others once, the checked way", async () => {
    await crediting.sweep({ chainId: C2 }); // the watermark at the tip
    const b = await blockOf([11n, 12n, 13n]);
    const before = await Promise.all(["c2-0", "c2-1", "c2-2"].map(c2Balance));
    // The doorbell's range credits the block's first deposit before the watermark step reads it:
    // its first-credit id exists, so the step writes nothing that way and reads the block again.
    expect(
      await crediting.creditConfirmed({
        chainId: C2,
        fromBlock: b.number,
        toBlock: b.number,
        limit: 1,
      }),
    ).toBe(1);
    expect(await crediting.creditNew({ chainId: C2 })).toEqual({ credited: 2, done: true });
    expect(await watermark()).toBe(String(b.number));
    const after = await Promise.all(["c2-0", "c2-1", "c2-2"].map(c2Balance));
    expect(after.map((x, i) => x - before[i]!)).toEqual([11n, 12n, 13n]);
    const rows = await ctx.db.pool.query<{ credit_id: string; events: number }>(
      `SELECT d.credit_id::text, (SELECT count(*)::int FROM ledger.events e WHERE e.transfer_id = d.credit_id) AS events
         FROM ledger.deposit_credits d WHERE d.chain_id = $1 AND d.block_number = $2 ORDER BY d.amount`,
      [C2, b.number],
    );
    expect(rows.rows).toEqual(
      b.txs.map((tx) => ({ credit_id: transferId(depositTransferName(C2, tx, "tx")), events: 1 })),
    );
  });
});
