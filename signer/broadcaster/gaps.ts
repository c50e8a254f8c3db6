/**
 * Gap stage: the chain's mined count is below the next nonce the signer gives, and no request of
 * the signer's holds the lowest unused nonce, so every later nonce waits behind it for ever. The
 * one other holder of a hot wallet's nonces is a contract deploy from the CLI
 * (signer/storedDeploy.ts): killed after storing its signed bytes, or after sending them, it holds
 * its nonce (resync starts above it, index.ts), and when no node has those bytes (never sent, or
 * dropped from the pools after the signer counted them pending) nothing else would fill it. Here:
 *
 * 1. A live stored deploy (signed/broadcast) at the lowest unused nonce, while the node's pending
 *    count is not above it: its stored bytes, only those, are sent again, at most once per
 *    `stallResendMs`. The contract is recorded, and its gas booked, by the deploy command's next
 *    run (it follows the stored deploy to final); until then reconciliation shows the gas as the
 *    wallet's break. Bytes whose fees fell below the market (the node refuses them as underpriced,
 *    or a node took them and they have not mined within the chain's bump interval) would hold
 *    every later nonce for ever: they are replaced at the same nonce (storedDeploy.ts's
 *    replaceStoredDeploy, which the deploy command's follower calls too), as a request's attempt
 *    is bumped (bump.ts, fees.ts): the same creation (data, value, gas limit) with fees raised by
 *    the replacement minimum, never above the chain's cap (`fee_cap` at it, and the bytes resent as
 *    they are). The new bytes and hash take the row's place and the old hash is kept
 *    (earlier_tx_hashes, migration 0113) in the one statement that stores them, before they are
 *    sent: bytes a node took earlier may still mine, and the deploy's follower records whichever
 *    did. Any of them creates the same contract (its address follows from the sender and the
 *    nonce), and only one can mine at the nonce. On a chain whose gas carries the L1 cost
 *    (`l1CostInGas`: Arbitrum) bytes refused "intrinsic gas too low" (the L1 price rose since
 *    their estimate) are replaced the same way with a fresh gas estimate (replaceStoredDeploy's
 *    `regas`), as a request's payment is (regas.ts). Bytes refused for another reason (funds
 *    short) cannot be mended here: refused again `stallResendMs` later, they raise `nonce_gap` too.
 *    On a halted chain (halt.ts) nothing is re-signed, and the bytes of a stored deploy no node has
 *    taken yet (`signed`) are not sent until an operator resumes it: nothing new leaves the hot
 *    wallet (the halt is read when they would be sent, not as the tick began).
 *    One a node took (`broadcast`) and dropped is sent again as before (only finishing it: the
 *    same bytes).
 * 2. Neither a request nor a live deploy holds it for `stallResendMs`, and the node holds nothing
 *    at it: a transaction of the wallet's key from outside custody, dropped. Nothing of ours may
 *    fill it without a person's decision: alert `nonce_gap`, again every `GAP_ALERT_EVERY_MS` while
 *    it lasts (SignerNeedsHuman runbook). So too when the request at it is still finalized while a
 *    node at the best head counts its nonce unused (a deep reorg accepted at the chain's resume
 *    undid its block, and its bytes did not mine again): the undone stage (undone.ts) follows such
 *    a request again once a node at the best head shows its block replaced; until it has (no node
 *    shows that height yet: no evidence), the wallet must not wait behind it in silence.
 *
 * A node that holds something executable at the nonce (pending count above it) decides nothing:
 * it is only waited for; nor does a count from a node behind the best head seen (`atBestHead`),
 * which shows nonces used long ago as unused, nor one under a stored deploy that ended (reverted,
 * dropped) at the nonce: a final block used it, so that node is behind, when its head is below
 * that block (`ended_block_number`, migration 0119). At or above it, a deep reorg accepted at the
 * resume took the block away (rows ended before 0119 have no block: the node is taken as behind).
 * A `reverted` deploy's stored bytes mined there, the only ones ever meant for that nonce: a nonce
 * the chain un-mined is re-sent (DESIGN), so they are sent again as in 1 (never replaced: nothing
 * is re-signed, and the gas booked for them stands), and refused, raise `nonce_gap` naming the
 * deploy. A `dropped` one's nonce was used by a transaction not ours and nothing of ours fills it:
 * `nonce_gap` naming the deploy, as for a finalized request. The state is per process and only
 * paces sends and alerts.
 */
import type { Hex } from "viem";
import { estimateFees } from "../fees.js";
import type { Lease } from "../lease.js";
import type { NodeErrorClass } from "../nodeErrors.js";
import { endedUndone, replaceStoredDeploy } from "../storedDeploy.js";
import type { WatchedRequest } from "./attempts.js";
import type { ChainSnapshot } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { freshHalt } from "./halt.js";
import { regasRefusal } from "./regas.js";
import { sendRaw } from "./send.js";

/** While a nonce gap no one holds lasts, its alert is raised again this often (the rule's window is 15 min). */
export const GAP_ALERT_EVERY_MS = 10 * 60_000;

/** Node answers to a stored deploy's send that say nothing against its bytes (nodeErrors.ts). */
const NOT_A_REFUSAL: ReadonlySet<NodeErrorClass> = new Set([
  "transient",
  "replacement_underpriced",
  "nonce_too_low",
]);

type LiveDeploy = {
  id: string;
  name: string;
  nonce: bigint;
  txHash: Hex;
  raw: Hex;
  status: "signed" | "broadcast";
  broadcastAt: Date | null;
  /**
   * A `reverted` deploy whose final block a deep reorg undid: its stored bytes are sent again as
   * they are, never replaced (re-signed) and never marked (the row keeps what it ended as).
   */
  undone?: true;
};

/**
 * The nonce after the wallet's highest stored deploy, whatever its status (0 when none): resync
 * never gives a request a nonce a deploy holds (signed/broadcast: whether or not a node has its
 * bytes) or used (reverted: mined at a final block; dropped: another transaction used it at a
 * final block). A node behind that block counts it unused, and only nodes at the indexed tip are
 * asked (index.ts): a request signed there would be refused "nonce too low" and end in needs_review.
 */
export async function deployNextNonce(
  db: Pick<Lease, "query">,
  chainId: number,
  from: string,
): Promise<bigint> {
  const { rows } = await db.query<{ max: string | null }>(
    `SELECT max(nonce)::text AS max FROM custody.hot_wallet_deploys
      WHERE chain_id = $1 AND from_address = $2`,
    [chainId, from],
  );
  const max = rows[0]!.max;
  return max === null ? 0n : BigInt(max) + 1n;
}

export type GapWatch = {
  check: (lease: Lease, watched: readonly WatchedRequest[], snap: ChainSnapshot) => Promise<void>;
};

export function createGapWatch(ctx: BroadcasterContext): GapWatch {
  const T = ctx.settings.stallResendMs;
  /** The request-less nonce being watched: since when, and when its alert was last raised. */
  let unheld: { nonce: bigint; since: number; alertedAt?: number } | null = null;
  /** Stored deploys this process sent, by id: when. */
  const deploySentAt = new Map<string, number>();

  /**
   * The request of ours at the nonce, if any. One still followed fills it (the nonce, stall and
   * bump stages send or cancel at it), and so does a `failed` one (its nonce cancelled, nonces.ts);
   * a finalized one is followed no more (`final`): its nonce unused, as counted by a node whose
   * head is at or above the request's block, means a final block was undone (a deep reorg accepted
   * at a chain's resume, docs/chain-halts.md) and its bytes did not mine again on the new branch.
   * The undone stage (undone.ts) follows it again once a node at the best head shows that block
   * replaced; until then nothing of ours fills it, and every later nonce waits. A node below that
   * block is only behind it (no evidence): the request still counts as holding the nonce there.
   */
  async function requestAt(
    nonce: bigint,
    watched: readonly WatchedRequest[],
    head: bigint,
  ): Promise<{ id: string; final: boolean } | undefined> {
    const w = watched.find((r) => r.nonce === nonce);
    if (w) return { id: w.id, final: false };
    const { rows } = await ctx.pool.query<{ id: string; final: boolean }>(
      `SELECT id, (status = 'confirmed' AND finalized_at IS NOT NULL AND block_number <= $4) AS final
         FROM custody.tx_requests WHERE chain_id = $1 AND from_address = $2 AND nonce = $3
        ORDER BY final LIMIT 1`,
      [ctx.chain.chainId, ctx.from, nonce.toString(), head.toString()],
    );
    return rows[0];
  }

  /**
   * A stored deploy that ended at the nonce (reverted: mined at a final block; dropped: another
   * transaction used the nonce at a final block): the nonce is used, and a node counting it unused
   * is behind that block (a signer started with only such a node has seen no head above it).
   * `undone` (a node at or above that block counts it unused: a deep reorg took the block away) and
   * `reverted`: its stored bytes mined there, the only ones ever meant for that nonce: `resend`
   * holds them, to be sent again as a live deploy's are (a nonce the chain un-mined is re-sent).
   */
  async function endedDeployAt(
    nonce: bigint,
    head: bigint,
  ): Promise<
    { name: string; txHash: Hex; status: string; undone: boolean; resend?: LiveDeploy } | undefined
  > {
    const { rows } = await ctx.pool.query<{
      id: string;
      name: string;
      tx_hash: Hex;
      raw_tx: Hex;
      status: string;
      undone: boolean;
    }>(
      `SELECT id, name, tx_hash, raw_tx, status, ${endedUndone("$4")} AS undone
         FROM custody.hot_wallet_deploys
        WHERE chain_id = $1 AND from_address = $2 AND nonce = $3 AND status IN ('reverted', 'dropped')
        ORDER BY undone LIMIT 1`,
      [ctx.chain.chainId, ctx.from, nonce.toString(), head.toString()],
    );
    const r = rows[0];
    if (!r) return undefined;
    const ended = { name: r.name, txHash: r.tx_hash, status: r.status, undone: r.undone };
    // A dropped one's nonce was used by a transaction not ours: its bytes never mined; not sent.
    if (!r.undone || r.status !== "reverted") return ended;
    const resend: LiveDeploy = {
      id: r.id,
      name: r.name,
      nonce,
      txHash: r.tx_hash,
      raw: r.raw_tx,
      status: "broadcast",
      broadcastAt: null,
      undone: true,
    };
    return { ...ended, resend };
  }

  async function liveDeployAt(nonce: bigint): Promise<LiveDeploy | undefined> {
    const { rows } = await ctx.pool.query<{
      id: string;
      name: string;
      tx_hash: Hex;
      raw_tx: Hex;
      status: LiveDeploy["status"];
      broadcast_at: Date | null;
    }>(
      `SELECT id, name, tx_hash, raw_tx, status, broadcast_at FROM custody.hot_wallet_deploys
        WHERE chain_id = $1 AND from_address = $2 AND nonce = $3 AND status IN ('signed', 'broadcast')`,
      [ctx.chain.chainId, ctx.from, nonce.toString()],
    );
    const r = rows[0];
    return (
      r && {
        id: r.id,
        name: r.name,
        nonce,
        txHash: r.tx_hash,
        raw: r.raw_tx,
        status: r.status,
        broadcastAt: r.broadcast_at,
      }
    );
  }

  /**
   * The deploy's bytes replaced (storedDeploy.ts's replaceStoredDeploy), or nothing; `regas`: with
   * a fresh gas estimate (refused for gas on a chain whose gas carries the L1 cost).
   */
  async function replaceDeploy(
    lease: Lease,
    deploy: LiveDeploy,
    head: bigint,
    regas = false,
  ): Promise<LiveDeploy | undefined> {
    const replaced = await replaceStoredDeploy(
      {
        chain: ctx.chain,
        client: ctx.client,
        lease,
        // The market at the tick's head (a node at the best head counted the wallet), as bump.ts
        // prices a request's replacement: not the first endpoint's `latest`.
        market: () => estimateFees(ctx.client, ctx.chain, head, ctx.chainView.gasPriceAt),
        sign: async (tx) => (await ctx.account.signTransaction(tx)) as Hex,
        log: ctx.log,
        onCapped: () => {
          ctx.metrics.feeCapHits.inc(ctx.labels);
          ctx.alert("fee_cap", {
            deploy: deploy.name,
            tx_hash: deploy.txHash,
            nonce: String(deploy.nonce),
            cap: ctx.chain.maxFeePerGas.toString(),
          });
        },
      },
      { ...deploy, nonce: Number(deploy.nonce), hash: deploy.txHash },
      regas ? { from: ctx.from } : undefined,
    );
    return replaced && { ...deploy, txHash: replaced.hash, raw: replaced.raw };
  }

  /** Whether the chain's halt, read now (halt.ts), holds the deploy's bytes: no node took them. */
  async function heldNow(deploy: LiveDeploy): Promise<boolean> {
    return deploy.status === "signed" && (await freshHalt(ctx)) !== null;
  }

  /** Sends the stored bytes; returns the node's refusal class (none: accepted or already known). */
  async function sendDeploy(lease: Lease, deploy: LiveDeploy, pending: bigint) {
    ctx.log.warn({
      msg: deploy.undone
        ? "lowest unused nonce is a stored deploy's that reverted at a final block a deep reorg undid; sending its stored bytes again"
        : "lowest unused nonce held by a stored deploy no node has; sending its stored bytes",
      name: deploy.name,
      nonce: String(deploy.nonce),
      tx_hash: deploy.txHash,
      node_pending_count: String(pending),
    });
    deploySentAt.set(deploy.id, Date.now());
    const result = await sendRaw(ctx, lease, deploy.raw);
    if (result.cls) return result; // logged by sendRaw; what the chain does with the nonce decides
    await lease.query(
      `UPDATE custody.hot_wallet_deploys SET status = 'broadcast', broadcast_at = now()
        WHERE id = $1 AND status = 'signed'`,
      [deploy.id],
    );
    return result;
  }

  /** Raise `nonce_gap` for the watched nonce once it has lasted `T`, then every GAP_ALERT_EVERY_MS. */
  function alertDue(now: number): boolean {
    if (!unheld || now - unheld.since < T) return false;
    return unheld.alertedAt === undefined || now - unheld.alertedAt >= GAP_ALERT_EVERY_MS;
  }

  return {
    async check(lease, watched, snap) {
      const next = ctx.state.nextNonce;
      const nonce = snap.latestCount;
      // A count from a node behind the best head seen is as of an older block: no evidence that
      // a nonce is unused (a lagging node shows nonces used long ago as free).
      if (next === undefined || nonce >= next || !snap.atBestHead) {
        unheld = null;
        return;
      }
      const request = await requestAt(nonce, watched, snap.head);
      if (request && !request.final) {
        unheld = null;
        return;
      }
      // Ended at a final block: a node below that block is behind it; one at or above it shows
      // the block undone (a deep reorg accepted at the resume), and nothing of ours fills it.
      const ended = request ? undefined : await endedDeployAt(nonce, snap.head);
      if (ended && !ended.undone) {
        unheld = null;
        return;
      }
      // A reverted deploy whose final block was undone: its stored bytes go out again as a live
      // deploy's do (paced, waited for while a node holds something at the nonce), unreplaced.
      const deploy = (await liveDeployAt(nonce)) ?? ended?.resend;
      const now = Date.now();
      if (deploy) {
        // Halted: bytes no node has taken yet wait for the resume (halt.ts), and so does every
        // later nonce, as behind a request's unsent bytes: nothing a person must decide. The halt
        // is read now, not as the tick began (intake's KMS signatures and the other stages came
        // between): what follows sends them.
        if (await heldNow(deploy)) {
          unheld = null;
          return;
        }
        if (now - (deploySentAt.get(deploy.id) ?? 0) < T) return;
        const pending = await ctx.chainView.pendingCount();
        if (pending > nonce) {
          // The node holds something at it: wait; but bytes of ours taken and not mined within
          // the bump interval are priced out (as bump.ts reads a request's attempt): replaced.
          unheld = null;
          const sentAt = deploySentAt.get(deploy.id) ?? deploy.broadcastAt?.getTime();
          if (
            !ctx.state.halt &&
            deploy.status === "broadcast" &&
            sentAt !== undefined &&
            now - sentAt >= ctx.chain.bumpIntervalMs
          ) {
            const replaced = deploy.undone
              ? undefined
              : await replaceDeploy(lease, deploy, snap.head);
            // At the cap (or no fees known, or undone) the stored bytes are sent again as they are.
            await sendDeploy(lease, replaced ?? deploy, pending);
          }
          return;
        }
        let sent = deploy;
        let { cls, message } = await sendDeploy(lease, sent, pending);
        const regas = regasRefusal(ctx.chain, cls);
        if ((cls === "underpriced" || regas) && !ctx.state.halt && !deploy.undone) {
          // Refused for its fees: replaced with raised ones (never on a halted chain) and sent,
          // unless a halt opened while KMS signed the replacement. Refused for gas on a chain
          // whose gas carries the L1 cost (the price rose since its estimate): re-signed with a
          // fresh estimate, as a request's payment is (regas.ts).
          const replaced = await replaceDeploy(lease, deploy, snap.head, regas);
          if (replaced && (await heldNow(deploy))) {
            unheld = null;
            return;
          }
          if (replaced) {
            sent = replaced;
            ({ cls, message } = await sendDeploy(lease, sent, pending));
          }
        }
        // Accepted; or no answer about these bytes (node trouble), a better-paying transaction at
        // the nonce in the node's pool, the nonce used on chain: nothing a person must decide yet.
        if (!cls || NOT_A_REFUSAL.has(cls)) {
          unheld = null;
          return;
        }
        // Refused (funds short, its replacement refused too, fees at the cap, ...): every later
        // nonce waits. Refused again `T` later: a person is told.
        if (unheld?.nonce !== nonce) unheld = { nonce, since: now };
        if (!alertDue(Date.now())) return;
        unheld.alertedAt = Date.now();
        ctx.alert("nonce_gap", {
          nonce: String(nonce),
          next_nonce: String(next),
          node_pending_count: String(pending),
          deploy: sent.name,
          tx_hash: sent.txHash,
          class: cls,
          error: message,
          reason: deploy.undone
            ? "the wallet's lowest unused nonce is a stored CLI deploy's that reverted at a final block a deep reorg accepted at the chain's resume undid, and the node refuses its stored bytes sent again: every later nonce waits"
            : "the wallet's lowest unused nonce is held by a stored CLI deploy whose bytes the node refuses (and no replacement under the fee cap was taken): every later nonce waits",
        });
        return;
      }
      if (unheld?.nonce !== nonce) unheld = { nonce, since: now };
      if (!alertDue(now)) return;
      const pending = await ctx.chainView.pendingCount();
      if (pending > nonce) return;
      unheld.alertedAt = now;
      ctx.alert("nonce_gap", {
        nonce: String(nonce),
        next_nonce: String(next),
        node_pending_count: String(pending),
        ...(ended
          ? {
              deploy: ended.name,
              tx_hash: ended.txHash,
              reason: `the wallet's lowest unused nonce is a stored CLI deploy's that ended (${ended.status}) at a final block a deep reorg accepted at the chain's resume undid, and the node holds nothing at it: every later nonce waits`,
            }
          : request
            ? {
                request_id: request.id,
                reason:
                  "the wallet's lowest unused nonce is a finalized request's whose block was undone (a deep reorg accepted at the chain's resume?) and the node holds nothing at it: every later nonce waits; its payment is booked as made",
              }
            : {
                reason:
                  "no stored request or deploy holds the wallet's lowest unused nonce and the node holds nothing at it: every later nonce waits (a transaction of this key sent outside custody?)",
              }),
      });
    },
  };
}
