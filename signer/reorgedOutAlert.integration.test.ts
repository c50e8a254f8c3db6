/**
 * A confirmed withdrawal reorged out is counted once in custody_signer_alerts_total
 * {alert="confirmed_tx_reorged_out"}, when its move back to `broadcast` commits. A pass whose
 * move rolls back (here a failing event insert; in production a lease lost mid-transaction)
 * changes nothing and must count nothing: the next pass sees the same reorg and counts it then.
 * Counted before the transaction, the custody team's SignerAlert rule saw one reorg per failed
 * pass.
 */
import { type Hex, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
const DEST = "0x000000000000000000000000000000000000d0d0" as Hex;
const FAILS = 3;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 3 }, reorgWindow: 8 } },
    signer: {},
  });
});

afterAll(async () => {
  await t?.ctx.db.pool
    .query(
      "DROP TRIGGER IF EXISTS fail_reorged_out ON custody.tx_request_events; DROP FUNCTION IF EXISTS public.fail_reorged_out(); DROP SEQUENCE IF EXISTS public.reorged_out_tries",
    )
    .catch(() => {});
  await t?.stop();
});

describe("a confirmed withdrawal reorged out", () => {
  it("is alerted once, when its move back to broadcast commits, not once per rolled-back pass", async () => {
    await t.rpc("anvil_mine", ["0x4"]); // room for a 5-block reorg
    await t.withdraw("reorged", { to: DEST, value: parseEther("1") });
    const first = await waitFor("mined", async () => {
      const o = await t.outcome("reorged");
      return o.blockNumber !== null ? o : undefined;
    });
    await t.rpc("anvil_mine", ["0x2"]); // 3 confirmations
    await waitFor("confirmed", async () => (await t.outcome("reorged")).status === "confirmed");
    expect(await t.alertCount("confirmed_tx_reorged_out", t.account.address)).toBe(0);

    // The first FAILS attempts to record the move fail (and roll the move back); then it goes.
    await t.ctx.db.pool.query(`
      CREATE SEQUENCE public.reorged_out_tries;
      CREATE FUNCTION public.fail_reorged_out() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('public.reorged_out_tries') <= ${FAILS} THEN
          RAISE EXCEPTION 'reorged_out event refused (test)';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_reorged_out BEFORE INSERT ON custody.tx_request_events
        FOR EACH ROW WHEN (NEW.event = 'reorged_out')
        EXECUTE FUNCTION public.fail_reorged_out();`);

    await t.rpc("anvil_reorg", [5, []]);
    const gone = await t.client.getBlock({ blockNumber: first.blockNumber! });
    expect(gone.hash).not.toBe(first.blockHash);

    await waitFor("moved back to broadcast", async () => (await t.outcome("reorged")).reorgs === 1);
    const { rows } = await t.ctx.db.pool.query<{ n: string }>(
      "SELECT last_value::text AS n FROM public.reorged_out_tries",
    );
    expect(Number(rows[0]!.n)).toBe(FAILS + 1); // FAILS passes rolled back, then one committed
    // old code: expected 4 to be 1 (counted before the transaction, once per rolled-back pass)
    expect(await t.alertCount("confirmed_tx_reorged_out", t.account.address)).toBe(1);
  });
});
