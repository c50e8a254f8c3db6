/**
 * Race tests of the crediting passes (reorg holds, lock order): a crediting worker whose ledger
 * stops at a chosen write until released (a slow round trip, nothing else differs), and a wait for
 * another statement to block on a row lock. Test-only.
 */
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import { gate } from "../../ops/testing/gate.js";
import { createDepositCrediting } from "../depositCrediting.js";
import type { Ledger } from "../index.js";

type Transfers = Parameters<Ledger["createTransfers"]>[0];

/**
 * A crediting worker whose ledger counts its writes (`writes.n`) and stops at the first write
 * `stopsAt` picks (given the transfers and the write's 1-based number) until `release`; `reached`
 * resolves when it stops there. A transaction Postgres aborts (a deadlock) is run again, so a
 * victim writes more often than its work needs.
 */
export function gatedCrediting(
  deps: { common: Common; pool: Pool; ledger: Ledger },
  stopsAt: (transfers: Transfers, write: number) => boolean,
) {
  const reached = gate();
  const held = gate();
  const writes = { n: 0 };
  const gated: Ledger = {
    ...deps.ledger,
    createTransfers: async (transfers, options) => {
      writes.n++;
      if (stopsAt(transfers, writes.n)) {
        reached.open();
        await held.wait;
      }
      return deps.ledger.createTransfers(transfers, options);
    },
  };
  const worker = createDepositCrediting({ common: deps.common, pool: deps.pool, ledger: gated });
  return { worker, reached: reached.wait, release: held.open, writes };
}

/** Resolves once `work` is done or a statement of this database waits for a row lock. */
export async function doneOrWaitingForALock(pool: Pool, work: Promise<unknown>): Promise<void> {
  let done = false;
  const finish = () => {
    done = true;
  };
  void work.then(finish, finish);
  while (!done) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if (rows[0]!.n > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
