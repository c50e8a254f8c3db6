/**
 * One active broadcaster per (chain, hot wallet): a Postgres advisory lock held by a dedicated
 * connection. The lock dies with the connection (and so with a killed process). Every write the
 * broadcaster makes goes through that same connection, so a process that lost its lease cannot
 * write anything: the lease is its own fencing token.
 *
 * A connection that goes silent is noticed by both ends (foundation/sessionLock.ts): the holder
 * counts the lease lost within `lostAfterMs` and cuts the connection, so a write in flight fails
 * instead of hanging; Postgres ends the silent session, and frees the lock for a standby, only
 * later.
 */
import pg from "pg";
import { PG_TYPES } from "../foundation/db.js";
import {
  cutConnection,
  LOCK_LOST_AFTER_MS,
  lockSessionSql,
  watchLock,
} from "../foundation/sessionLock.js";
import { LeaseLostError } from "./errors.js";

// biome-ignore lint/suspicious/noExplicitAny: pg's own default row type (a caller may name its row)
type UntypedRow = any;

export type Lease = {
  key: string;
  /** Run SQL on the lease connection; throws LeaseLostError once the connection is gone. */
  query: <R extends pg.QueryResultRow = UntypedRow>(
    sql: string,
    params?: unknown[],
  ) => Promise<pg.QueryResult<R>>;
  /** BEGIN/COMMIT on the lease connection (ROLLBACK on error). */
  transaction: <T>(fn: () => Promise<T>) => Promise<T>;
  isHeld: () => boolean;
  /** Resolves when the connection is lost. */
  lost: Promise<void>;
  /** Notifications on channels the lease LISTENs to. */
  onNotify: (fn: (payload: string) => void) => void;
  release: () => Promise<void>;
};

/** `end()`, which waits for the server's goodbye: on a silent connection, cut it after `waitMs`. */
async function close(client: pg.Client, waitMs: number): Promise<void> {
  const timer = setTimeout(() => cutConnection(client), waitMs);
  await client.end().catch(() => {});
  clearTimeout(timer);
}

export function leaseKey(chainId: number, address: string): string {
  return `custody-signer:${chainId}:${address.toLowerCase()}`;
}

/**
 * Wait (as a standby) until the lease is ours, or until `signal` aborts (returns undefined).
 * `listen` channels are LISTENed on the lease connection once it is held. With `once`, ask once:
 * undefined when another process holds it, and a connection error is thrown, not retried.
 */
export async function acquireLease({
  databaseUrl,
  key,
  signal,
  retryMs = 500,
  listen = [],
  applicationName = "custody-node signer",
  once = false,
  lostAfterMs = LOCK_LOST_AFTER_MS,
}: {
  databaseUrl: string;
  key: string;
  signal: AbortSignal;
  retryMs?: number;
  listen?: string[];
  applicationName?: string;
  once?: boolean;
  /** An unanswered (or negative) lock check this old means the lease is lost. */
  lostAfterMs?: number;
}): Promise<Lease | undefined> {
  while (!signal.aborted) {
    const client = new pg.Client({
      connectionString: databaseUrl,
      application_name: applicationName,
      types: PG_TYPES,
      keepAlive: true,
      keepAliveInitialDelayMillis: lostAfterMs,
      connectionTimeoutMillis: lostAfterMs,
    });
    let held = false;
    let stopWatch: (() => void) | undefined;
    let markLost: () => void = () => {};
    const lost = new Promise<void>((resolve) => {
      markLost = () => {
        held = false;
        resolve();
      };
    });
    // A pg client's 'error' that nobody hears ends the process. A standby's failed connection is
    // seen by its next query (it starts over); once the lock is held, the watch hears it too.
    client.on("error", () => {});
    try {
      await client.connect();
      // Postgres's half of the watch: a silent session is ended, and its lock freed.
      await client.query(lockSessionSql(lostAfterMs));
      // Stand by on one connection, polling for the lock, until it is ours.
      while (!signal.aborted) {
        // Bounded: a standby on a silent connection starts over instead of waiting for ever (a
        // lock granted unheard is freed when Postgres ends that session).
        const cut = setTimeout(() => cutConnection(client), lostAfterMs);
        const { rows } = await client
          .query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok", [key])
          .finally(() => clearTimeout(cut));
        if (rows[0].ok) {
          held = true;
          break;
        }
        if (once) break;
        await new Promise((r) => setTimeout(r, retryMs));
      }
      if (!held) {
        await close(client, lostAfterMs);
        return undefined;
      }
      // Watched from the moment it holds the lock, so a silent connection cannot hold up the
      // LISTENs either.
      stopWatch = watchLock(client, lostAfterMs, () => {
        markLost();
        // Fail whatever waits on the connection now: nothing more is written through it (a write
        // whose answer never came committed under the lock, or not at all: the next session reads).
        cutConnection(client);
      });
      for (const channel of listen) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      stopWatch?.();
      await close(client, lostAfterMs);
      if (once) throw error;
      await new Promise((r) => setTimeout(r, retryMs));
      continue;
    }
    const query: Lease["query"] = async <R extends pg.QueryResultRow>(
      sql: string,
      params?: unknown[],
    ) => {
      if (!held) throw new LeaseLostError(key);
      try {
        return await client.query<R>(sql, params);
      } catch (error) {
        if (!held) throw new LeaseLostError(key, error);
        throw error;
      }
    };
    return {
      key,
      query,
      async transaction(fn) {
        await query("BEGIN");
        try {
          const out = await fn();
          await query("COMMIT");
          return out;
        } catch (error) {
          await client.query("ROLLBACK").catch(() => {});
          throw error;
        }
      },
      isHeld: () => held,
      lost,
      onNotify(fn) {
        client.on("notification", (n) => fn(n.payload ?? ""));
      },
      async release() {
        held = false;
        stopWatch?.();
        await close(client, lostAfterMs);
      },
    };
  }
  return undefined;
}
