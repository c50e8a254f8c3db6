/**
 * Reorg stage. Evidence of a reorg is a different hash from a node at or past that height (a
 * missing block never is: chains/rpc.ts does not ask a node for blocks it lacks). From the evidence
 * height down, stored canonical hashes are compared with the node's until they agree: the common
 * ancestor. Blocks above it are orphaned (kept for audit) unless that would reach the published
 * finalized block: then the chain halts instead (nothing orphaned, a halts row, an audit entry,
 * readiness false), and only an operator's `custody-node chains resume --accept-reorg` rolls back.
 */

import { ChainDataInconsistentError, type EvmAdapter } from "../../chains/index.js";
import { appendAudit } from "../../foundation/audit.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { type FinalizedBlock, readFinalized } from "../finality.js";
import { insertHalt } from "../halts.js";
import { depthBucket } from "../metrics.js";
import {
  canonicalHashes,
  lockTip,
  lowestCanonicalBlock,
  orphanAbove,
  recordReorg,
  type StatusChange,
  saveTip,
  type Tip,
} from "../store.js";
import { observeIndexed, ring, type SyncContext } from "./context.js";

export type ReorgDeps = { pool: Pool; adapter: EvmAdapter; chainId: number };

export type AncestorSearch =
  /** The highest stored canonical block the node has with the same hash (null: none stored). */
  | { kind: "ancestor"; ancestor: Tip | null; lowest: bigint | null }
  /** The node disagrees at every height down to and including `floor` (the finalized block). */
  | { kind: "below_floor"; floor: bigint; remoteHash: string; storedHash: string };

/**
 * Walk down from `from` (a height where a node showed a block other than ours) comparing stored
 * canonical hashes with the node's, 64 headers per batch. With `floor`, stop there: disagreement
 * at the floor means the reorg reaches it. Our block at `from` itself, read again (a load
 * balancer's other backend, or the node since), leaves no evidence: nothing above it was shown
 * different, only not shown (a lagging node lacks it), so it throws (read again) rather than name
 * `from` the ancestor: orphaning above it would take missing data as evidence, and with `from`
 * below the finalized block it would orphan final blocks past the halt.
 */
export async function findCommonAncestor(
  deps: ReorgDeps,
  from: bigint,
  floor: bigint | null,
): Promise<AncestorSearch> {
  const lowest = await lowestCanonicalBlock(deps.pool, deps.chainId);
  if (lowest === null) return { kind: "ancestor", ancestor: null, lowest };
  // Evidence from below the floor (a node at a final height disagreeing) is checked where it is.
  const floorStop = floor !== null && from < floor ? from : floor;
  const bottom = floorStop !== null && floorStop > lowest ? floorStop : lowest;
  let hi = from;
  while (hi >= bottom) {
    const lo = hi - 63n > bottom ? hi - 63n : bottom;
    const stored = await canonicalHashes(deps.pool, deps.chainId, lo, hi);
    const numbers: bigint[] = [];
    for (let n = hi; n >= lo; n--) numbers.push(n);
    // Only endpoints at or past `hi` answer; a null header from one is refetched (rpc.ts). First
    // those at or past the best head seen: a node stuck on the losing fork (its head stopped at or
    // above `hi`) shows our orphaned blocks there, and read again "as ours" no reorg was ever
    // handled while it stayed first. No node there now (a head from nowhere): any at `hi`.
    const remote = await deps.adapter.getHeaders(numbers, { preferBestHead: true });
    for (let i = 0; i < numbers.length; i++) {
      const n = numbers[i]!;
      const hash = remote[i]?.hash.toLowerCase();
      if (hash === undefined)
        throw new ChainDataInconsistentError(`node returned no header ${n} it claims to have`);
      const mine = stored.get(n);
      if (mine === hash) {
        if (n === from)
          throw new ChainDataInconsistentError(
            `block ${from} differed from ours, then read again as ours: no reorg until a node shows one`,
          );
        return { kind: "ancestor", ancestor: { number: n, hash }, lowest };
      }
      if (floor !== null && n <= floor)
        return { kind: "below_floor", floor: n, remoteHash: hash, storedHash: mine ?? "none" };
    }
    hi = lo - 1n;
  }
  return { kind: "ancestor", ancestor: null, lowest };
}

/**
 * The chain's head block (for the record; "unknown" if it cannot be read right now), from a node
 * at the best head seen: a first endpoint stuck on the losing fork named its own head and its
 * orphaned block there as the reorg's new tip.
 */
async function remoteHead(adapter: EvmAdapter): Promise<Tip> {
  const head = await adapter.getHead({ preferBestHead: true });
  const [block] = await adapter.getHeaders([head], { preferBestHead: true }).catch(() => [null]);
  return { number: head, hash: block?.hash.toLowerCase() ?? "unknown" };
}

export type Rollback = {
  ancestor: bigint;
  depth: number;
  beyondWindow: boolean;
  newTip: Tip;
  orphaned: StatusChange & { confirmedBefore: number };
};

/**
 * Orphan everything above `ancestor` and move the checkpoint there, in the caller's transaction
 * (after it locked the tip). `lowerFinalized`: an operator accepted a reorg of final blocks, so
 * the published finalized block moves down to the ancestor (the only way it ever moves down).
 */
export async function rollBack(
  client: PoolClient,
  args: {
    chainId: number;
    tip: Tip;
    ancestor: Tip | null;
    ancestorNumber: bigint;
    newTip: Tip;
    reorgWindow: number;
    lowerFinalized?: boolean;
  },
): Promise<Rollback> {
  const depth = Number(args.tip.number - args.ancestorNumber);
  const beyondWindow = depth > args.reorgWindow;
  const orphaned = await orphanAbove(client, args.chainId, args.ancestorNumber);
  await recordReorg(client, {
    chainId: args.chainId,
    depth,
    ancestor: args.ancestorNumber,
    oldTip: args.tip,
    newTip: args.newTip,
    beyondWindow,
    orphanedConfirmedFacts: orphaned.confirmedBefore,
  });
  await saveTip(client, args.chainId, args.ancestor);
  if (args.lowerFinalized)
    await client.query(
      `UPDATE chain.checkpoints
          SET finalized_number = CASE WHEN $2::bigint IS NULL THEN NULL ELSE $2::bigint END,
              finalized_hash = $3
        WHERE chain_id = $1 AND finalized_number > COALESCE($2::bigint, -1)`,
      [args.chainId, args.ancestor?.number.toString() ?? null, args.ancestor?.hash ?? null],
    );
  return { ancestor: args.ancestorNumber, depth, beyondWindow, newTip: args.newTip, orphaned };
}

/**
 * The ingestor's reaction to reorg evidence at `evidenceAt` (<= the stored tip): orphan above the
 * common ancestor, or halt when the ancestor is below the published finalized block.
 */
export async function handleReorg(ctx: SyncContext, tip: Tip, evidenceAt: bigint): Promise<void> {
  const { pool, chainId, chain, adapter, logger, metrics, labels } = ctx;
  ctx.knownTip = null; // the checkpoint moves (or the chain halts): read it again
  ctx.finalizedTag = null; // it was checked against blocks that may now be orphaned
  const finalized = await readFinalized(pool, chainId);
  const from = evidenceAt < tip.number ? evidenceAt : tip.number;
  const search = await findCommonAncestor(
    { pool, adapter, chainId },
    from,
    finalized?.number ?? null,
  );
  if (search.kind === "below_floor") return haltChain(ctx, tip, finalized!, search);
  const { ancestor } = search;
  const lowest = search.lowest ?? BigInt(chain.startBlock);
  const ancestorNumber = ancestor ? ancestor.number : lowest - 1n;
  const newTip = await remoteHead(adapter);
  const result = await withTransaction(pool, async (client) => {
    await lockTip(client, chainId, tip);
    return rollBack(client, {
      chainId,
      tip,
      ancestor,
      ancestorNumber,
      newTip,
      reorgWindow: chain.reorgWindow,
    });
  });
  const { depth, beyondWindow, orphaned } = result;
  metrics.reorgs.inc({ ...labels, depth: depthBucket(depth), beyond_window: String(beyondWindow) });
  if (orphaned.confirmedBefore > 0) metrics.orphanedConfirmed.inc(labels, orphaned.confirmedBefore);
  const fields = {
    chain_id: chainId,
    depth,
    common_ancestor: ancestorNumber.toString(),
    old_tip: `${tip.number}:${tip.hash}`,
    new_tip: `${newTip.number}:${newTip.hash}`,
    orphaned_facts: orphaned.count,
    orphaned_confirmed_facts: orphaned.confirmedBefore,
    reorg_window: chain.reorgWindow,
    finalized: finalized?.number.toString() ?? null,
  };
  if (beyondWindow || orphaned.confirmedBefore > 0)
    logger.error({ msg: "reorg deeper than the reorg window or confirmation rule", ...fields });
  else logger.warn({ msg: "reorg detected", ...fields });
  observeIndexed(ctx, ancestor?.number ?? null);
  await ring(ctx, orphaned, newTip.hash);
}

async function haltChain(
  ctx: SyncContext,
  tip: Tip,
  finalized: FinalizedBlock,
  search: Extract<AncestorSearch, { kind: "below_floor" }>,
): Promise<void> {
  const { pool, chainId, logger } = ctx;
  const details = {
    finalized_number: finalized.number.toString(),
    finalized_hash: finalized.hash,
    node_hash_at_finalized: search.remoteHash,
    stored_tip: `${tip.number}:${tip.hash}`,
    depth_at_least: Number(tip.number - finalized.number) + 1,
    endpoint_heads: ctx.adapter.rpc
      .heads()
      .map((h) => `${h.endpoint}: ${h.head ?? "?"}`)
      .join(", "),
  };
  const reason = `reorg reaches finalized block ${finalized.number}`;
  const created = await withTransaction(pool, async (client) => {
    await lockTip(client, chainId, tip);
    const { created } = await insertHalt(client, { chainId, reason, details });
    if (created)
      await appendAudit(client, {
        actor: "indexer",
        action: "chain.halted",
        entityType: "chain",
        entityId: String(chainId),
        details: { reason, ...details },
      });
    return created;
  });
  ctx.state.halted = reason;
  if (created)
    logger.error({
      msg: "chain halted: a reorg reaches a final block; nothing orphaned. Inspect, then `custody-node chains resume`",
      chain_id: chainId,
      ...details,
    });
}
