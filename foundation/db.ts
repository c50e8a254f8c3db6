/**
 * Postgres access: one pool per process, and a transaction helper that retries the failures
 * Postgres asks us to retry (serialization failure, deadlock).
 */
import pg from "pg";
import { amountFromText } from "./amounts.js";
import { backoffMs } from "./backoff.js";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

const NUMERIC = 1700;
const NUMERIC_ARRAY = 1231;
const TEXT_ARRAY = 1009; // _text, which pg-types' TypeId enum leaves out
const textArray = (pg.types.getTypeParser as (oid: number, format: "text") => unknown)(
  TEXT_ARRAY,
  "text",
) as (value: string) => (string | null)[];

/**
 * The type parsers of every connection we open (`createPool`, and `pg.Client`s made with
 * `{ types: PG_TYPES }`): NUMERIC arrives as a bigint, parsed here and nowhere else. Every NUMERIC
 * we store is an integer (amounts are NUMERIC(78,0)), and so is every sum of them; a fractional
 * one (an `extract(epoch ...)`, an `avg`) fails its query with DB_FRACTIONAL_NUMERIC instead of
 * being rounded: cast it in SQL (`::float8`). NUMERIC[] likewise (pg's default parses it to
 * floats, which loses digits). Per connection, not `pg.types.setTypeParser`: a global would change
 * every library's pg in the process too.
 */
export const PG_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (format !== "binary") {
      if (oid === NUMERIC) return amountFromText;
      if (oid === NUMERIC_ARRAY)
        return (value: string) =>
          textArray(value).map((v) => (v === null ? null : amountFromText(v)));
    }
    return pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * Default `idleInTransactionTimeoutMs`: Postgres ends a pool session that has sat in an open
 * transaction, sending nothing, this long. A process cut off (host partition, frozen) inside a
 * transaction would otherwise hold its row locks (an account's, a wallet's nonce row) for the hours
 * TCP keepalive takes, stalling crediting and withdrawals for every other task. No transaction of
 * ours waits this long between statements, except the reconciler's completion, which waits on
 * on-chain reads and lifts it for itself (ledger/recon/store.ts); migrations and bench seeding use
 * their own clients, and a COPY in progress is not idle.
 */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

export function createPool(
  connectionString: string,
  options: {
    max?: number;
    applicationName?: string;
    /** See IDLE_IN_TRANSACTION_TIMEOUT_MS; 0 turns it off. */
    idleInTransactionTimeoutMs?: number;
  } = {},
): Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? "custody-node",
    types: PG_TYPES,
    // Sent with the connection's startup (no extra round trip); a transaction may `SET LOCAL` it.
    idle_in_transaction_session_timeout: Math.ceil(
      options.idleInTransactionTimeoutMs ?? IDLE_IN_TRANSACTION_TIMEOUT_MS,
    ),
    // TCP keepalive probes from 10 s idle (as the lease connections, foundation/sessionLock.ts):
    // our end hears of a dead peer (an idle pooled client, a query waiting on a partitioned host)
    // from the OS instead of never; the server's end of a transaction is the timeout above.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A client losing its connection (server restart, killed backend) must not crash the process:
  // idle clients report through the pool, checked-out ones through their own 'error' event (the
  // next query on them fails, and the caller's transaction helper handles that).
  pool.on("error", () => {});
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  return pool;
}

const RETRYABLE = new Set(["40001", "40P01"]);

export function isRetryablePgError(error: unknown): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    RETRYABLE.has((error as { code?: string }).code ?? "")
  );
}

export type TransactionOptions = {
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** BEGIN ... READ ONLY: the transaction may only read (a snapshot for a report or a check). */
  readOnly?: boolean;
  /** Attempts in total, including the first. */
  attempts?: number;
  /**
   * Planner or run-time settings for this transaction only (`SET LOCAL`, undone at its end), e.g.
   * `{ enable_mergejoin: "off" }`. Names must be lowercase identifiers (`[a-z_][a-z0-9_.]*`);
   * values are sent as parameters.
   */
  settings?: Readonly<Record<string, string>>;
};

const SETTING_NAME = /^[a-z_][a-z0-9_.]*$/;

/** `settings` as name/value pairs, every name checked (`who` names the caller in the error). */
function checkedSettings(
  settings: Readonly<Record<string, string>> | undefined,
  who: string,
): [string, string][] {
  const entries = Object.entries(settings ?? {});
  for (const [name] of entries)
    if (!SETTING_NAME.test(name)) throw new Error(`${who}: bad setting name ${name}`);
  return entries;
}

/** `SET LOCAL` each setting in `client`'s open transaction (values sent as parameters). */
async function applySettings(client: PoolClient, settings: [string, string][]): Promise<void> {
  for (const [name, value] of settings)
    await client.query("SELECT set_config($1, $2, true)", [name, value]);
}

/** The after-commit work of each client's open `withTransaction` attempt (`afterCommit`). */
const committed = new WeakMap<PoolClient, (() => void)[]>();

/**
 * Run `effect` once `client`'s transaction has committed: the metric or log line that tells of a
 * change, never for one rolled back (a later step failing, or an attempt that withTransaction
 * retries after a serialization failure or deadlock, whose effects would otherwise be told once per
 * attempt, or once per pass while a step keeps failing). Dropped if the transaction rolls back;
 * an effect that throws is ignored (the change is committed; the caller must not retry it). Outside
 * a `withTransaction` (a client the caller runs itself) it runs at once.
 */
export function afterCommit(client: PoolClient, effect: () => void): void {
  const pending = committed.get(client);
  if (pending) pending.push(effect);
  else effect();
}

/**
 * Run `fn` inside BEGIN/COMMIT on one client. Retries serialization failures and deadlocks with
 * jittered backoff; any other error rolls back and is rethrown. `fn` must be safe to re-run. What
 * `fn` hands to `afterCommit` runs after COMMIT, once, and only for the attempt that committed.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 8;
  const settings = checkedSettings(options.settings, "withTransaction");
  const begin = [
    "BEGIN",
    ...(options.isolation ? [`ISOLATION LEVEL ${options.isolation.toUpperCase()}`] : []),
    ...(options.readOnly ? ["READ ONLY"] : []),
  ].join(" ");
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken = false;
    const pending: (() => void)[] = [];
    committed.set(client, pending);
    try {
      await client.query(begin);
      await applySettings(client, settings);
      const result = await fn(client);
      await client.query("COMMIT");
      committed.delete(client);
      for (const effect of pending) {
        try {
          effect();
        } catch {
          // Committed: a failing log or metric must not make the caller retry the change.
        }
      }
      return result;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true;
      }
      if (attempt < attempts && isRetryablePgError(error)) {
        await new Promise((r) =>
          setTimeout(r, backoffMs(attempt, { baseMs: 10, maxDoublings: 6, jitter: "full" })),
        );
        continue;
      }
      throw error;
    } finally {
      committed.delete(client);
      client.release(broken);
    }
  }
}

/** A second client reading in another client's snapshot (`snapshotPeer`). */
export type SnapshotPeer = {
  client: PoolClient;
  /** Ends the peer's read-only transaction and returns it to the pool (after its running reads). */
  end: () => Promise<void>;
};

/** What `pg_export_snapshot()` returns, e.g. `00000003-0000001B-1`; checked before it is spliced in. */
const SNAPSHOT_ID = /^[0-9A-F]+(-[0-9A-F]+)+$/i;

/**
 * A second client of `pool` in the same snapshot as `client`, which must be inside a REPEATABLE
 * READ (or SERIALIZABLE) transaction: `client` exports its snapshot (`pg_export_snapshot`), the
 * peer imports it (`SET TRANSACTION SNAPSHOT`) in a read-only transaction of its own, with the
 * same `settings`. Reads on either client then see exactly the same rows, and Postgres runs them
 * at the same time, one backend each. The snapshot stays importable while `client`'s transaction
 * is open, so call this before that transaction may end.
 *
 * Null when the pool has no client to spare (none idle, no room for another, or others waiting),
 * cannot hand one over within `waitMs` (default 100 ms), or the peer cannot be set up: the caller
 * reads on its own client instead. Waiting without a bound while holding `client` could deadlock a
 * pool whose clients all wait for a second one; a client the pool hands over after the wait is
 * released at once.
 */
export async function snapshotPeer(
  pool: Pool,
  client: PoolClient,
  options: { settings?: Readonly<Record<string, string>>; waitMs?: number } = {},
): Promise<SnapshotPeer | null> {
  const settings = checkedSettings(options.settings, "snapshotPeer");
  const exported = await client.query<{ id: string }>("SELECT pg_export_snapshot() AS id");
  const id = exported.rows[0]?.id ?? "";
  if (!SNAPSHOT_ID.test(id)) throw new Error(`snapshotPeer: unexpected snapshot id ${id}`);
  const peer = await connectWithin(pool, options.waitMs ?? 100);
  if (peer === null) return null;
  try {
    await peer.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await peer.query(`SET TRANSACTION SNAPSHOT '${id}'`);
    await applySettings(peer, settings);
  } catch {
    peer.release(true);
    return null;
  }
  return {
    client: peer,
    end: async () => {
      try {
        await peer.query("COMMIT");
        peer.release();
      } catch {
        peer.release(true);
      }
    },
  };
}

/**
 * A client of `pool` if it can hand one over within `ms`; a later one is released at once. None
 * without waiting when the pool has no idle client and no room for a new one (or others queue).
 */
async function connectWithin(pool: Pool, ms: number): Promise<PoolClient | null> {
  const full = pool.idleCount === 0 && pool.totalCount >= (pool.options.max ?? 10);
  if (full || pool.waitingCount > 0) return null;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  const connecting = pool.connect();
  try {
    const got = await Promise.race([connecting, late]);
    if (got === null)
      connecting.then(
        (c) => c.release(),
        () => {},
      );
    return got;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
