/**
 * The watched set: custody addresses of one chain, held in memory so 100,000 addresses cost one
 * Set lookup per candidate. Whoever allocates an address inserts it into chain.custody_addresses
 * and calls `notifyWatchedAddress` in the same transaction; running indexers LISTEN and reload.
 * Because a notification can be missed (reconnects), the indexer also checks the table's size
 * inside each batch transaction (`isCurrent`) and reloads before filtering when it changed.
 */
import type pg from "pg";
import type { Pool } from "../ops/db.js";
import type { Logger } from "../ops/logger.js";

export const WATCHED_CHANNEL = "chain_watched";

type Queryable = Pick<pg.ClientBase, "query">;

/** Tell running indexers that `chainId` has a new custody address (delivered on COMMIT). */
export async function notifyWatchedAddress(client: Queryable, chainId: number): Promise<void> {
  await client.query("SELECT pg_notify($1, $2)", [WATCHED_CHANNEL, String(chainId)]);
}

export type WatchedSet = {
  has: (lowercaseAddress: string) => boolean;
  size: () => number;
  /** Reload if the table holds a different number of addresses than memory (cheap index count). */
  ensureCurrent: (client: Queryable) => Promise<void>;
  reload: (client?: Queryable) => Promise<void>;
  stop: () => Promise<void>;
};

async function load(client: Queryable, chainId: number): Promise<Set<string>> {
  const { rows } = await client.query<{ address: string }>(
    "SELECT address FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return new Set(rows.map((r) => r.address));
}

export async function createWatchedSet({
  pool,
  chainId,
  logger,
}: {
  pool: Pool;
  chainId: number;
  logger: Logger;
}): Promise<WatchedSet> {
  let set = await load(pool, chainId);
  // Newest created_at seen by ensureCurrent: a delete plus an insert keeps the count but moves this.
  let loadedLatest: string | null = null;
  let stopped = false;
  let listener: pg.PoolClient | undefined;

  const reload = async (client: Queryable = pool) => {
    set = await load(client, chainId);
    logger.debug({ msg: "watched set reloaded", chain_id: chainId, addresses: set.size });
  };

  // A dedicated connection for LISTEN; on loss, reconnect and reload (a notification may be lost).
  // Our listeners come off before the client goes back to the pool, so a later error of that
  // pooled connection is not ours to handle (and cannot release it twice).
  let detach: (() => void) | undefined;
  const listen = async (): Promise<void> => {
    if (stopped) return;
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      const c = client;
      const onNotification = (n: pg.Notification) => {
        if (n.channel === WATCHED_CHANNEL && n.payload === String(chainId))
          reload().catch((err) => logger.warn({ msg: "watched set reload failed", err }));
      };
      const onError = () => {
        if (listener !== c) return;
        detach?.();
        c.release(true);
        setTimeout(() => void listen(), 1000).unref();
      };
      c.on("notification", onNotification);
      c.on("error", onError);
      listener = c;
      detach = () => {
        c.off("notification", onNotification);
        c.off("error", onError);
        if (listener === c) listener = undefined;
        detach = undefined;
      };
      await c.query(`LISTEN ${WATCHED_CHANNEL}`);
      await reload();
    } catch (err) {
      if (client && listener === client) {
        detach?.();
        client.release(true);
      }
      if (stopped) return;
      logger.warn({ msg: "watched set LISTEN failed, retrying", err });
      setTimeout(() => void listen(), 1000).unref();
    }
  };
  await listen();

  return {
    has: (address) => set.has(address),
    size: () => set.size,
    async ensureCurrent(client) {
      const { rows } = await client.query<{ n: string; latest: string | null }>(
        `SELECT count(*) AS n, max(created_at)::text AS latest
           FROM chain.custody_addresses WHERE chain_id = $1`,
        [chainId],
      );
      const latest = rows[0]?.latest ?? null;
      if (Number(rows[0]?.n ?? 0) !== set.size || latest !== loadedLatest) {
        await reload(client);
        loadedLatest = latest;
      }
    },
    reload,
    async stop() {
      stopped = true;
      const client = listener;
      detach?.();
      if (client) {
        const ok = await client.query(`UNLISTEN ${WATCHED_CHANNEL}`).then(
          () => true,
          () => false,
        );
        client.release(!ok);
      }
    },
  };
}
