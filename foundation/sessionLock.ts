/**
 * Watching a session advisory lock held on a dedicated connection (the signer's broadcaster lease,
 * the indexer's chain lease). Such a connection can die silently (a host partition, a failover
 * without a reset: no FIN, no RST), and neither end hears of it for hours of TCP keepalive. Both
 * ends therefore watch it: the holder asks Postgres every `lostAfterMs / 5` whether its session
 * still holds an advisory lock, and counts the lock lost when an answer is `false` or takes longer
 * than `lostAfterMs`, or the session is found ended (`watchLock`); Postgres ends a lock session
 * silent for 3 × `lostAfterMs` (`lockSessionSql`), which frees the lock for a standby only after
 * the old holder has stopped.
 */
import pg from "pg";

/** Default `lostAfterMs`: a holder cut off stops within ~12 s; Postgres frees its lock at ~30 s. */
export const LOCK_LOST_AFTER_MS = 10_000;

/** Run on the lock's connection: Postgres ends the session once it has been silent this long. */
export function lockSessionSql(lostAfterMs: number): string {
  const ms = 3 * Math.ceil(lostAfterMs);
  return `SET idle_session_timeout = ${ms}; SET idle_in_transaction_session_timeout = ${ms}`;
}

/**
 * Every `lostAfterMs / 5`, ask (queued behind the holder's own queries) whether this session still
 * holds an advisory lock; `onLost` once when the answer is no, or has not come within
 * `lostAfterMs`, or the check failed because the session is gone (`sessionEnded`: the client
 * closed, its socket cut, the backend terminated): its lock went with it, and a failed check is no
 * evidence it stands. An SQL error of the live session (e.g. the check landing in a failed
 * transaction) is an answer from it, whose session lock stands.
 *
 * The client's 'error' and 'end' are heard here too, so a session that ends is counted lost at
 * once, whatever the holder is doing; and they stay heard after `onLost`, until the returned stop
 * (a client cut by `onLost` says so with an 'error' after it). Stop the watch, and so its
 * listening, when the lock is given up: no `onLost` comes after the stop.
 */
export function watchLock(
  client: pg.ClientBase,
  lostAfterMs: number,
  onLost: () => void,
): () => void {
  let askedAt: number | undefined;
  let stopped = false;
  const lost = () => {
    // Once: a check still out when the deadline passed may fail (the connection cut) after it,
    // and an ending session says so by 'error' and by 'end'.
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    onLost();
  };
  client.on("error", lost);
  client.on("end", lost);
  const timer = setInterval(
    () => {
      if (askedAt !== undefined) {
        if (Date.now() - askedAt > lostAfterMs) lost();
        return;
      }
      askedAt = Date.now();
      client
        .query<{ held: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                          AND pid = pg_backend_pid()) AS held`,
        )
        .then(
          ({ rows }) => {
            askedAt = undefined;
            if (!rows[0]?.held) lost();
          },
          (error: unknown) => {
            askedAt = undefined;
            if (sessionEnded(error)) lost();
          },
        );
    },
    Math.max(10, Math.floor(lostAfterMs / 5)),
  );
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    client.off("error", lost);
    client.off("end", lost);
  };
}

/**
 * Whether a failed query says its session is gone: anything but an error Postgres sent (the
 * client's own "not queryable", "Connection terminated", a socket error), or one Postgres sends as
 * it ends the session (class 08 connection exceptions; 57P01-57P05: terminated, crash, shutdown,
 * database dropped, idle session timeout). A query cancel (57014) or any other SQL error is the
 * live session's.
 */
function sessionEnded(error: unknown): boolean {
  if (!(error instanceof pg.DatabaseError)) return true;
  const code = error.code ?? "";
  return code.startsWith("08") || code.startsWith("57P");
}

/** Cut a client's socket (not in pg's types): every query waiting on it fails at once. */
export function cutConnection(client: pg.ClientBase): void {
  (
    client as unknown as { connection: { stream: { destroy: () => void } } }
  ).connection.stream.destroy();
}

/**
 * Give a session advisory lock back: the unlock, its connection cut if no answer came within
 * `lostAfterMs` (on a silent connection it would wait for TCP keepalive, minutes, past a stop
 * timeout; Postgres frees the lock when it ends the silent session). A failed unlock is a session
 * already gone, whose lock went with it. `unlockSql`: written in code, never from input.
 */
export async function unlockWithin(
  client: pg.ClientBase,
  unlockSql: string,
  params: unknown[],
  lostAfterMs: number,
): Promise<void> {
  const cut = setTimeout(() => cutConnection(client), lostAfterMs);
  await client
    .query(unlockSql, params)
    .catch(() => {})
    .finally(() => clearTimeout(cut));
}

/**
 * A turn under a session advisory lock on a connection of `pool` (the reconciler's per-chain
 * loop, the deposit-events producer): `undefined` when another session holds the lock. The lock is
 * taken and the session settings applied in one statement, so a connection that did not get the
 * lock goes back to the pool unchanged; one that got it is watched (`watchLock`) and closed after
 * the turn, never pooled again with those settings. `held` aborts when the lock is counted lost,
 * or its session ends: the connection is then cut (the unlock would hang on a silent one), and
 * Postgres frees the lock when it ends the silent session, after this holder stopped. A `turn`
 * that writes must stop at `held`'s abort: another holder may have the lock by then.
 */
export async function withPooledSessionLock<T>(
  pool: pg.Pool,
  /** `key`: the lock's SQL key expression, written in code (never from input), over `params`. */
  lock: { key: string; params?: unknown[]; lostAfterMs?: number },
  turn: (held: AbortSignal) => Promise<T>,
): Promise<{ value: T } | undefined> {
  const lostAfterMs = lock.lostAfterMs ?? LOCK_LOST_AFTER_MS;
  const params = lock.params ?? [];
  const ms = String(3 * Math.ceil(lostAfterMs));
  const client = await pool.connect();
  let taken = false;
  try {
    // Bounded: on a silent connection a lock granted unheard is freed when Postgres ends the
    // session (its settings came with the lock).
    const cut = setTimeout(() => cutConnection(client), lostAfterMs);
    const { rows } = await client
      .query<{ ok: boolean }>(
        `SELECT ok, CASE WHEN ok THEN set_config('idle_session_timeout', $${params.length + 1}, false)
                              || set_config('idle_in_transaction_session_timeout', $${params.length + 1}, false)
                    END AS settings
           FROM (SELECT pg_try_advisory_lock(${lock.key}) AS ok) l`,
        [...params, ms],
      )
      .finally(() => clearTimeout(cut))
      .catch((error: unknown) => {
        taken = true; // whatever the session did, the connection is not pooled again
        throw error;
      });
    if (!rows[0]?.ok) return undefined;
    taken = true;
    const lost = new AbortController();
    const stopWatch = watchLock(client, lostAfterMs, () => {
      lost.abort();
      cutConnection(client);
    });
    try {
      return { value: await turn(lost.signal) };
    } finally {
      stopWatch();
      if (!lost.signal.aborted)
        await unlockWithin(client, `SELECT pg_advisory_unlock(${lock.key})`, params, lostAfterMs);
    }
  } finally {
    client.release(taken);
  }
}
