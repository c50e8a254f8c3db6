/**
 * A withdrawal's status change is told (the "withdrawal status" log line and
 * custody_api_withdrawal_transitions_total) only when its transaction commits, on real Postgres:
 * an outcome pass whose second move fails rolls the first back, and a transaction that
 * withTransaction retries after a serialization failure runs its moves twice. Told inside the
 * transaction, the custody team's dashboard counted (and the log showed) moves that never
 * happened, again on every pass.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../foundation/logger.js";
import { createMetrics } from "../../foundation/metrics.js";
import {
  createWithdrawalOutcomeTest,
  type WithdrawalOutcomeTest,
} from "../testing/withdrawalOutcomes.js";
import { createWithdrawals, type Withdrawals } from "./service.js";

const ETH = 10n ** 18n;
const GWEI = 10n ** 9n;
const TX_A = `0x${"a1".repeat(32)}`;

let t: WithdrawalOutcomeTest;
/** The follower under test: its own registry and log, read by the assertions. */
let withdrawals: Withdrawals;
let metrics: ReturnType<typeof createMetrics>;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  t = await createWithdrawalOutcomeTest({
    fund: { customers: ["alice", "bob"], amount: 10n * ETH },
  });
  metrics = createMetrics({ defaults: false });
  const logger = createLogger("info", {
    write: (line: string) => void lines.push(JSON.parse(line)),
  });
  withdrawals = createWithdrawals({
    common: { ...t.ctx.common, logger, metrics },
    pool: t.ctx.db.pool,
    ledger: t.ledger,
  });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

async function statusOf(id: string): Promise<string> {
  const { rows } = await t.ctx.db.pool.query<{ status: string }>(
    "SELECT status FROM api.withdrawals WHERE id = $1",
    [id],
  );
  return rows[0]!.status;
}

/** custody_api_withdrawal_transitions_total{status} in the follower's registry. */
async function transitions(status: string): Promise<number> {
  const metric = metrics.registry.getSingleMetric("custody_api_withdrawal_transitions_total");
  const values = (await metric?.get())?.values ?? [];
  return values.find((v) => v.labels.status === status)?.value ?? 0;
}

/** The "withdrawal status" lines the follower logged for withdrawal `id`, as `from>to`. */
const statusLines = (id: string) =>
  lines
    .filter((l) => l.msg === "withdrawal status" && l.withdrawal_id === id)
    .map((l) => `${l.from}>${l.to}`);

describe("withdrawal status changes are told after commit", () => {
  it("an outcome pass that fails after its first move tells nothing, on every pass", async () => {
    const id = await t.withdraw("alice", 1n * ETH);
    // Confirmed without a tx hash: the pass moves signing -> broadcast, then cannot post the hold
    // (WITHDRAWAL_OUTCOME_INCOMPLETE) and rolls both back.
    await t.signerRecords(id, { status: "confirmed", fee: 21_000n * GWEI, block: 10 });
    for (let pass = 0; pass < 3; pass++) await withdrawals.syncOutcomes();
    expect(await statusOf(id)).toBe("signing");
    expect(
      lines.filter((l) => l.msg === "applying signer outcome failed" && l.withdrawal_id === id)
        .length,
    ).toBe(3);
    expect(statusLines(id)).toEqual([]);
    expect(await transitions("broadcast")).toBe(0);

    // The signer's outcome complete: both moves commit and are told once each.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 21_000n * GWEI,
      block: 10,
    });
    await withdrawals.syncOutcomes();
    expect(await statusOf(id)).toBe("confirmed");
    expect(statusLines(id)).toEqual(["signing>broadcast", "broadcast>confirmed"]);
    expect(await transitions("broadcast")).toBe(1);
    expect(await transitions("confirmed")).toBe(1);
  });

  it("a transaction retried after a serialization failure at COMMIT tells its move once", async () => {
    const id = await t.withdraw("bob", 1n * ETH);
    const before = await transitions("broadcast");
    // Postgres fails this withdrawal's first COMMIT that moves it to broadcast with 40001 (a
    // deferred trigger, as SERIALIZABLE's commit-time check would): withTransaction retries.
    await t.ctx.db.pool.query(`
      CREATE SEQUENCE public.fail_once;
      CREATE FUNCTION public.fail_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('public.fail_once') = 1 THEN
          RAISE EXCEPTION 'could not serialize access (test)' USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER fail_first_commit AFTER UPDATE ON api.withdrawals
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.id = '${id}'::uuid AND NEW.status = 'broadcast')
        EXECUTE FUNCTION public.fail_first_commit();`);
    try {
      await t.signerRecords(id, { status: "broadcast", txHash: TX_A });
      expect(await withdrawals.syncOutcomes()).toBe(1);
      const { rows } = await t.ctx.db.pool.query<{ n: string }>(
        "SELECT last_value::text AS n FROM public.fail_once",
      );
      expect(rows[0]!.n).toBe("2"); // the first commit failed, the retry committed
      expect(await statusOf(id)).toBe("broadcast");
      expect(statusLines(id)).toEqual(["signing>broadcast"]);
      expect((await transitions("broadcast")) - before).toBe(1);
    } finally {
      await t.ctx.db.pool.query(
        "DROP TRIGGER fail_first_commit ON api.withdrawals; DROP FUNCTION public.fail_first_commit(); DROP SEQUENCE public.fail_once",
      );
    }
  });
});
