/**
 * Resuming a halted chain (`custody-node chains resume`). It re-checks the stored chain against
 * the node first: if they agree again (a node that lied or has recovered), the halt is closed and
 * nothing is rolled back. A disagreement that does not hold when the ancestor search reads that
 * height again is none: it fails (CHAIN_DATA_INCONSISTENT), changing nothing, accepted or not. If
 * the reorg is still there, it is described and refused, naming the common ancestor found
 * (`<height>:<hash>`), unless the operator accepts that ancestor (`--accept-reorg <height>:<hash>`):
 * then the deep rollback runs once, in one transaction with closing the halt and its audit entry;
 * the published finalized block moves down to the common ancestor (the only way it ever moves
 * down). An acceptance names what the operator was shown: if the ancestor found now is another
 * (the node changed endpoint or backend since), it fails (INDEXER_RESUME_ANCESTOR_CHANGED),
 * changing nothing.
 */

import { type ChainConfig, type EvmAdapter, NoHealthyEndpointError } from "../chains/index.js";
import { appendAudit } from "../foundation/audit.js";
import { type Pool, withTransaction } from "../foundation/db.js";
import {
  ResumeAncestorChangedError,
  ResumeAncestorPrunedError,
  ResumeInputError,
} from "./errors.js";
import { readFinalized } from "./finality.js";
import { type ChainHalt, closeHalt, openHalt } from "./halts.js";
import { canonicalHashes, loadTip, lockTip, type Tip } from "./store.js";
import { findCommonAncestor, type Rollback, rollBack } from "./sync/reorg.js";

export type ResumeResult =
  | { kind: "not_halted" }
  /** The node agrees with the stored chain again: halt closed, nothing rolled back. */
  | { kind: "resumed"; halt: ChainHalt; rollback: null }
  /** The reorg is still there: nothing changed; re-run with acceptReorg = `accept` to roll back. */
  | {
      kind: "refused";
      halt: ChainHalt;
      ancestor: bigint;
      /** The common ancestor as an acceptance names it: `<height>:<hash>` (`none`: no stored block agrees). */
      accept: string;
      depth: number;
      finalized: bigint | null;
      factsAbove: number;
      confirmedFactsAbove: number;
    }
  | { kind: "resumed"; halt: ChainHalt; rollback: Rollback };

/** Resume needs a node that has block `n`; none answered for it (nothing is changed). */
function noNodeAt(adapter: EvmAdapter, chainId: number, n: bigint): NoHealthyEndpointError {
  const heads = adapter.rpc
    .heads()
    .map((e) => `${e.endpoint}: ${e.head ?? "?"}`)
    .join(", ");
  return new NoHealthyEndpointError("chains resume", chainId, n, heads);
}

/**
 * The resume's reads of the chain: of a node at the best head seen first (chains/rpc.ts
 * ReadOptions.preferBestHead; the ancestor search reads so too).
 */
const atBest = { preferBestHead: true } as const;

/** How an acceptance names a common ancestor; `none`: no stored block agrees (all are rolled back). */
const ACCEPTANCE = /^\d+:(0x[0-9a-f]{64}|none)$/;

async function factsAbove(pool: Pool, chainId: number, ancestor: bigint) {
  const { rows } = await pool.query<{ n: number; c: number }>(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'confirmed')::int AS c
       FROM chain.transfers WHERE chain_id = $1 AND block_number > $2 AND status <> 'orphaned'`,
    [chainId, ancestor.toString()],
  );
  return { n: rows[0]?.n ?? 0, c: rows[0]?.c ?? 0 };
}

async function factsBelow(pool: Pool, chainId: number, lowest: bigint): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT 1 FROM chain.transfers
      WHERE chain_id = $1 AND block_number < $2 AND status <> 'orphaned' LIMIT 1`,
    [chainId, lowest.toString()],
  );
  return rows.length > 0;
}

export async function resumeChain({
  pool,
  adapter,
  chain,
  by: byArg,
  reason: reasonArg,
  acceptReorg,
}: {
  pool: Pool;
  adapter: EvmAdapter;
  chain: ChainConfig;
  by: string;
  reason: string;
  /** The common ancestor the operator accepts, as a refusal named it (`accept`); null: none. */
  acceptReorg: string | null;
}): Promise<ResumeResult> {
  const chainId = chain.chainId;
  // Closing a halt (and --accept-reorg's rollback of final blocks) is an operator decision: who
  // and why are recorded, never blank.
  const by = byArg.trim();
  const reason = reasonArg.trim();
  if (by === "") throw new ResumeInputError(chainId, "by");
  if (reason === "") throw new ResumeInputError(chainId, "reason");
  const accepted = acceptReorg?.trim().toLowerCase() ?? null;
  if (accepted !== null && !ACCEPTANCE.test(accepted))
    throw new ResumeInputError(
      chainId,
      "accept-reorg",
      "must name the common ancestor as the refusal printed it: <height>:<hash>",
    );
  const halt = await openHalt(pool, chainId);
  if (!halt) return { kind: "not_halted" };
  const tip = await loadTip(pool, chainId);
  const audit = {
    actor: by,
    action: "chain.resumed",
    entityType: "chain",
    entityId: String(chainId),
  };

  // Re-check: does the node (at its own height, up to our tip) still disagree with us? Asked of a
  // node at the best head, every endpoint's head asked first (this process has read nothing yet):
  // a first endpoint stuck on the fork that lost (our stored chain, as the halt's reorg found it)
  // is at our tip, and on its word the halt was closed as "the node agrees", no reorg described;
  // one stuck on a fork we never stored was described as the reorg to accept.
  let disagreeFrom: bigint | null = null;
  if (tip) {
    await adapter.rpc.askEveryHead();
    const head = await adapter.getHead(atBest);
    // biome-ignore lint/complexity/useMathMinMax: bigints (Math.min takes numbers only)
    const h = head < tip.number ? head : tip.number;
    const [remote] = await adapter.getHeaders([h], atBest);
    if (!remote) throw noNodeAt(adapter, chainId, h); // a header not returned is no agreement
    const stored = (await canonicalHashes(pool, chainId, h, h)).get(h);
    if (stored !== undefined && remote.hash.toLowerCase() !== stored) disagreeFrom = h;
    // A node below our tip that agrees at its own height has not seen the blocks above it (it
    // lags, or restarted from an old snapshot): no agreement. Resume once one has reached our tip.
    else if (h < tip.number) throw noNodeAt(adapter, chainId, tip.number);
  }
  if (!tip || disagreeFrom === null) {
    const closed = await withTransaction(pool, async (client) => {
      await lockTip(client, chainId, tip);
      const closed = await closeHalt(client, chainId, { resumedBy: by, reason });
      await appendAudit(client, {
        ...audit,
        details: {
          reason,
          halt_id: halt.id,
          rollback: false,
          note: "the node agrees with the stored chain",
        },
      });
      return closed;
    });
    return { kind: "resumed", halt: closed ?? halt, rollback: null };
  }

  // The walk reads the disagreeing height again: our block there throws (CHAIN_DATA_INCONSISTENT),
  // nothing described as a reorg nor rolled back, even with --accept-reorg: an operator accepts
  // what a node shows, never what it lacks.
  const search = await findCommonAncestor({ pool, adapter, chainId }, disagreeFrom, null);
  if (search.kind !== "ancestor") throw new Error("unreachable: no floor was given");
  const lowest = search.lowest ?? BigInt(chain.startBlock);
  // No stored block agrees, and facts lie below the oldest one (its older blocks were pruned): the
  // ancestor is down there, where our hashes are gone. Rolling back to the oldest stored block
  // would keep those facts as if the node agreed with them (a node on another chain, most likely).
  if (search.ancestor === null && (await factsBelow(pool, chainId, lowest)))
    throw new ResumeAncestorPrunedError(chainId, lowest);
  const ancestorNumber = search.ancestor ? search.ancestor.number : lowest - 1n;
  const finalized = await readFinalized(pool, chainId);
  const found = `${ancestorNumber}:${search.ancestor?.hash.toLowerCase() ?? "none"}`;
  const depth = Number(tip.number - ancestorNumber);
  if (accepted === null) {
    const above = await factsAbove(pool, chainId, ancestorNumber);
    return {
      kind: "refused",
      halt,
      ancestor: ancestorNumber,
      accept: found,
      depth,
      finalized: finalized?.number ?? null,
      factsAbove: above.n,
      confirmedFactsAbove: above.c,
    };
  }
  // The operator accepted the rollback they were shown; a node that now shows another (deeper or
  // shallower) has not been looked at by anyone.
  if (accepted !== found) throw new ResumeAncestorChangedError(chainId, accepted, found, depth);
  const head = await adapter.getHead(atBest);
  const [headBlock] = await adapter.getHeaders([head], atBest);
  // The new tip's hash is the next batch's parent check: a header not returned is not one.
  if (!headBlock) throw noNodeAt(adapter, chainId, head);
  const newTip: Tip = { number: head, hash: headBlock.hash.toLowerCase() };
  const { rollback, closed } = await withTransaction(pool, async (client) => {
    await lockTip(client, chainId, tip);
    const rollback = await rollBack(client, {
      chainId,
      tip,
      ancestor: search.ancestor,
      ancestorNumber,
      newTip,
      reorgWindow: chain.reorgWindow,
      lowerFinalized: true,
    });
    const closed = await closeHalt(client, chainId, { resumedBy: by, reason });
    await appendAudit(client, {
      ...audit,
      details: {
        reason,
        halt_id: halt.id,
        rollback: true,
        accept_reorg: true,
        accepted_ancestor: accepted,
        common_ancestor: ancestorNumber.toString(),
        depth: rollback.depth,
        finalized_before: finalized?.number.toString() ?? null,
        orphaned_facts: rollback.orphaned.count,
        orphaned_confirmed_facts: rollback.orphaned.confirmedBefore,
        old_tip: `${tip.number}:${tip.hash}`,
        new_tip: `${newTip.number}:${newTip.hash}`,
      },
    });
    return { rollback, closed };
  });
  return { kind: "resumed", halt: closed ?? halt, rollback };
}
