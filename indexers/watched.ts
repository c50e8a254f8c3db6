/**
 * The watched set: custody addresses of one chain, held in memory so 100,000 addresses cost one
 * Set lookup per candidate. Whoever allocates an address adds it (`addWatchedAddresses`) and calls
 * `notifyWatchedAddress` in the same transaction; running indexers LISTEN.
 *
 * Updates are deltas, coalesced: a notification naming its addresses adds them (no query); one
 * naming only the chain (older callers, bulk adoptions) asks for a read of the rows created since
 * the last read (an index range), and any number of those arriving within `coalesceMs` or while
 * one runs cost one more read, not one each. Only (re)connecting and the audit load everything.
 * Postgres delivers every notification committed while we listen, so nothing is re-read per
 * batch: `ensureCurrent` makes sure every notification committed before it is applied (one round
 * trip on the LISTEN connection, and any read it asked for; with that connection lost, a read of
 * the whole table instead, until it is back), and audits the table (its count
 * against memory, then a full load if they differ) at most every `auditIntervalMs`: a writer that
 * forgot to notify, a transaction that committed later than the read margin, or a notification
 * lost between a dropped connection and our re-LISTEN (which loads everything too).
 */
import type pg from "pg";
import type { Pool } from "../foundation/db.js";
import type { Logger } from "../foundation/logger.js";

export const WATCHED_CHANNEL = "chain_watched";

type Queryable = Pick<pg.ClientBase, "query">;

// pg_notify payloads must stay under 8000 bytes: 150 addresses (43 bytes each) per notification.
const ADDRESSES_PER_NOTIFY = 150;

/** How far back a chain-only notification looks before the last read (late commits). */
const RECENT_MARGIN = "2 seconds";

/**
 * Tell running indexers that `chainId` has new custody addresses (delivered on COMMIT). With
 * `addresses` (lowercase), indexers add exactly those; without, they reload the chain's set.
 */
export async function notifyWatchedAddress(
  client: Queryable,
  chainId: number,
  addresses?: readonly string[],
): Promise<void> {
  if (!addresses || addresses.length === 0) {
    await client.query("SELECT pg_notify($1, $2)", [WATCHED_CHANNEL, String(chainId)]);
    return;
  }
  const payloads: string[] = [];
  for (let i = 0; i < addresses.length; i += ADDRESSES_PER_NOTIFY)
    payloads.push(`${chainId}:${addresses.slice(i, i + ADDRESSES_PER_NOTIFY).join(",")}`);
  await client.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", [
    WATCHED_CHANNEL,
    payloads,
  ]);
}

/** A row of the watched set: a custody address of one chain (lowercase), its kind and owner. */
export type WatchedAddress = {
  chainId: number;
  address: string;
  kind: "deposit" | "hot" | "cold";
  /** The customer id of a deposit address; a label for a hot or cold wallet. */
  owner: string;
};

/**
 * Add custody addresses to the watched set (chain.custody_addresses), in the caller's transaction,
 * in one statement however many rows. With `ifAbsent`, an address already watched on that chain is
 * skipped (ON CONFLICT DO NOTHING); without, it fails the statement (and the caller's transaction).
 * Returns the rows inserted, in input order. The caller notifies running indexers
 * (`notifyWatchedAddress`) in the same transaction.
 */
export async function addWatchedAddresses(
  client: Queryable,
  rows: readonly WatchedAddress[],
  { ifAbsent = false }: { ifAbsent?: boolean } = {},
): Promise<WatchedAddress[]> {
  if (rows.length === 0) return [];
  const { rows: inserted } = await client.query<{ chain_id: string; address: string }>(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
     ${ifAbsent ? "ON CONFLICT (chain_id, address) DO NOTHING" : ""}
     RETURNING chain_id::text, address`,
    [
      rows.map((r) => r.chainId),
      rows.map((r) => r.address),
      rows.map((r) => r.kind),
      rows.map((r) => r.owner),
    ],
  );
  const added = new Set(inserted.map((r) => `${r.chain_id}:${r.address}`));
  return rows.filter((r) => added.has(`${r.chainId}:${r.address}`));
}

/** A notification for `chainId`: the addresses it names, `"reload"`, or null (another chain). */
export function parseWatchedPayload(payload: string, chainId: number): string[] | "reload" | null {
  const prefix = String(chainId);
  if (payload === prefix) return "reload";
  if (!payload.startsWith(`${prefix}:`)) return null;
  const addresses = payload
    .slice(prefix.length + 1)
    .split(",")
    .map((a) => a.toLowerCase());
  // Anything that is not an address makes the whole notification a reload: never guess.
  return addresses.every((a) => /^0x[0-9a-f]{40}$/.test(a)) ? addresses : "reload";
}

export type WatchedSet = {
  has: (lowercaseAddress: string) => boolean;
  size: () => number;
  /**
   * Before filtering a batch: apply every notification committed so far (a `SELECT 1` on the
   * LISTEN connection, then any reload they asked for), and audit the table if the last audit is
   * older than `auditIntervalMs`. No table read otherwise.
   */
  ensureCurrent: (client: Queryable) => Promise<void>;
  reload: (client?: Queryable) => Promise<void>;
  /** Full loads of the table since start (the first one included). */
  reloads: () => number;
  /** Reads of recently created rows (chain-only notifications, coalesced). */
  recentReads: () => number;
  stop: () => Promise<void>;
};

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function load(client: Queryable, chainId: number): Promise<Set<string>> {
  const { rows } = await client.query<{ address: string }>(
    "SELECT address FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return new Set(rows.map((r) => r.address));
}

async function count(client: Queryable, chainId: number): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    "SELECT count(*) AS n FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return Number(rows[0]?.n ?? 0);
}

export async function createWatchedSet({
  pool,
  chainId,
  logger,
  auditIntervalMs = 60_000,
  coalesceMs = 100,
}: {
  pool: Pool;
  chainId: number;
  logger: Logger;
  auditIntervalMs?: number;
  /** A requested reload waits this long first, so a burst of notifications folds into it. */
  coalesceMs?: number;
}): Promise<WatchedSet> {
  let set = new Set<string>();
  let reloads = 0;
  // When the table was last compared with memory (a reload counts): 0 asks for an audit.
  let auditedAt = 0;
  let stopped = false;
  let listener: pg.PoolClient | undefined;

  // Database time just before the last full load or recent read: rows created since (minus a
  // margin for transactions that committed late) are all a chain-only notification can add.
  let loadedAt: string | null = null;
  const dbNow = async (client: Queryable) =>
    (await client.query<{ now: string }>("SELECT now()::text AS now")).rows[0]!.now;
  const reload = async (client: Queryable = pool) => {
    const at = await dbNow(client);
    set = await load(client, chainId);
    loadedAt = at;
    auditedAt = Date.now();
    reloads++;
    logger.debug({ msg: "watched set reloaded", chain_id: chainId, addresses: set.size });
  };

  // Coalescing: a reload starts `coalesceMs` after the first request, one at a time; requests
  // while it waits fold into it, requests while it runs into the next one. Requests are numbered,
  // so `ensureCurrent` waits only for a reload that started after the requests it saw, never for
  // a burst to end. Named addresses are added at once (a Set add), even while a reload runs: the
  // reload may have read the table before their commit, so they are added again when it lands.
  let requested = 0;
  let covered = 0;
  let pumping = false;
  let reloaded = deferred();
  const addedDuringReload = new Set<string>();
  let fullWanted = false;
  let cutDelay: (() => void) | undefined;
  let recentReads = 0;
  /**
   * What a chain-only notification can mean: rows created since the last read. A transaction
   * that ran longer than RECENT_MARGIN before committing is found by the audit (count) instead.
   */
  const readRecent = async () => {
    if (loadedAt === null) return reload();
    const { rows } = await pool.query<{ now: string; addresses: string[] }>(
      `SELECT now()::text AS now, ARRAY(
         SELECT address FROM chain.custody_addresses
          WHERE chain_id = $1 AND created_at >= $2::timestamptz - $3::interval) AS addresses`,
      [chainId, loadedAt, RECENT_MARGIN],
    );
    for (const a of rows[0]!.addresses) set.add(a);
    loadedAt = rows[0]!.now;
    recentReads++;
  };
  const pump = async (delayMs: number) => {
    pumping = true;
    try {
      // A batch waiting for this read (reloadsDone) ends the wait early: it needs it now.
      if (delayMs > 0)
        await new Promise<void>((r) => {
          const timer = setTimeout(r, delayMs);
          cutDelay = () => {
            clearTimeout(timer);
            r();
          };
        });
      cutDelay = undefined;
      while (covered < requested && !stopped) {
        const upTo = requested;
        addedDuringReload.clear();
        try {
          if (fullWanted) {
            fullWanted = false;
            await reload();
          } else await readRecent();
          for (const a of addedDuringReload) set.add(a);
        } catch (err) {
          logger.warn({ msg: "watched set reload failed", err });
          auditedAt = 0; // the next ensureCurrent audits
        }
        covered = upTo;
        reloaded.resolve();
        reloaded = deferred();
      }
    } finally {
      pumping = false;
      reloaded.resolve();
      reloaded = deferred();
    }
  };
  const requestReload = (delayMs = coalesceMs, full = false): void => {
    requested++;
    if (full) fullWanted = true;
    if (!pumping) void pump(delayMs);
  };
  /** Resolves once every reload requested so far has been done. */
  const reloadsDone = async () => {
    const target = requested;
    while (covered < target && !stopped) {
      if (!pumping) void pump(0);
      cutDelay?.();
      await reloaded.promise;
    }
  };
  const onPayload = (payload: string) => {
    const parsed = parseWatchedPayload(payload, chainId);
    if (parsed === null) return;
    if (parsed === "reload") {
      requestReload();
      return;
    }
    for (const a of parsed) {
      set.add(a);
      if (pumping) addedDuringReload.add(a);
    }
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
        if (n.channel === WATCHED_CHANNEL && n.payload) onPayload(n.payload);
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
      // After LISTEN: every address committed from now on is notified, every earlier one loaded.
      requestReload(0, true);
      await reloadsDone();
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
  if (reloads === 0) await reload(); // not listening yet (retrying): start from the table

  return {
    has: (address) => set.has(address),
    size: () => set.size,
    async ensureCurrent(client) {
      // A round trip on the LISTEN connection is a barrier: Postgres sends a notification
      // committed before our query ahead of its answer, so every allocation committed before this
      // batch is applied (or its reload requested) when it returns. No table read.
      // Without that connection (lost, its re-LISTEN not done yet) a notification may have gone
      // nowhere: the table itself is the barrier then, read whole on every batch until it is back.
      const c = listener;
      const barrier =
        c !== undefined &&
        (await c.query("SELECT 1").then(
          () => true,
          () => false,
        ));
      await reloadsDone();
      if (!barrier) {
        logger.debug({
          msg: "watched set: no LISTEN connection, reading the table",
          chain_id: chainId,
        });
        await reload(client);
        return;
      }
      if (Date.now() - auditedAt < auditIntervalMs) return;
      const n = await count(client, chainId);
      auditedAt = Date.now();
      if (n !== set.size) {
        logger.info({ msg: "watched set audit: the table changed unnotified; reloading" });
        await reload(client);
      }
    },
    reload,
    reloads: () => reloads,
    recentReads: () => recentReads,
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
