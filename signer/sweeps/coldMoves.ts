/**
 * Hot/cold: a hot wallet keeps at most its per-asset ceiling; above it, the excess goes to the
 * chain's cold address through the same rails as a withdrawal: a ledger hold (custody:hot →
 * custody:cold) and a signer request in one transaction, then post on confirmation or void on
 * failure, and the gas booked either way (a token that takes a fee on transfer: the post is the
 * amount less the token's fees, each fee booked as the move's cost against its own Transfer). A
 * booked move is followed until its block is final (followColdMoves.ts): reorged out, it is held
 * and open again. One move per (chain, hot wallet, asset) in flight (open, or booked and not final
 * yet); the next is sized after it is final. After a failed move (a cold address that reverts, a
 * gas estimate the node refuses) the next waits out a retry window, as sweeps do.
 */
import { randomUUID } from "node:crypto";
import type { Counter } from "prom-client";
import { encodeFunctionData, erc20Abi, getAddress, zeroAddress } from "viem";
import type { EvmAdapter } from "../../chains/evm/createEvmAdapter.js";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { HotWalletConfig } from "../../foundation/config.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { counterOnce } from "../../foundation/metrics.js";
import {
  addWatchedAddresses,
  loadCustodyWallets,
  notifyWatchedAddress,
  readFinalized,
} from "../../indexers/index.js";
import {
  assetIdOf,
  holdSettlement,
  type Ledger,
  type TransferInput,
  unfinalFundings,
} from "../../ledger/index.js";
import { failureIsEvidenced, getTxOutcomes, type PaidTransfer, paidTransfer } from "../outcomes.js";
import { requestTransaction } from "../requests.js";
import {
  assertBooked,
  coldMoveHold,
  coldMoveTokenFee,
  coldMoveTransferIds,
  gasTransfer,
  hotAccount,
} from "./bookings.js";
import { SweepReceiptError } from "./errors.js";
import {
  lastNoSigner,
  type NoSignerExcess,
  type NoSignerSeen,
  reportNoSigner,
  signedHotWallets,
} from "./noSigner.js";
import { settlementOf } from "./settleSweeps.js";
import { isUnreadBalance, reportUnreadBalance } from "./unreadBalance.js";

/** Per-asset hot ceilings of a chain, keyed by lowercase asset (zero address for native). */
export function hotCeilings(chain: ChainConfig): Map<string, bigint> {
  const ceilings = new Map<string, bigint>();
  if (chain.nativeHotCeiling !== undefined) ceilings.set(zeroAddress, chain.nativeHotCeiling);
  for (const t of chain.tokens) {
    if (t.hotCeiling !== undefined) ceilings.set(t.address.toLowerCase(), t.hotCeiling);
  }
  return ceilings;
}

/** The excess over the ceiling, counting only value both the ledger and the chain agree is there. */
export function excessOverCeiling(args: {
  ledgerAvailable: bigint;
  onChain: bigint;
  ceiling: bigint;
}): bigint {
  // biome-ignore lint/complexity/useMathMinMax: Math.min does not take bigints
  const held = args.ledgerAvailable < args.onChain ? args.ledgerAvailable : args.onChain;
  return held > args.ceiling ? held - args.ceiling : 0n;
}

/**
 * custody_cold_moves_failed_total, registered once per registry. A failed move leaves the value
 * above the ceiling in the hot wallet, and no move of its asset is requested for the retry window
 * (then most likely fails the same way): a warn line alone told no one (the ColdMoveFailed alert).
 */
export function coldMoveFailedCounter(
  common: Pick<Common, "metrics">,
): Counter<"chain_id" | "asset"> {
  return counterOnce(common.metrics.registry, {
    name: "custody_cold_moves_failed_total",
    help: "Moves of hot-wallet value above its ceiling to cold that failed (hold voided: a cold address that reverts, a refused gas estimate, an operator's fail), by chain and asset; the value stays hot and the asset is not moved again for the retry window",
    labelNames: ["chain_id", "asset"],
  });
}

/**
 * Names every (chain, asset) a move can fail for at 0: a series first seen at 1 is no increase to
 * Prometheus, so the first failure after a start would not fire ColdMoveFailed.
 */
export function nameColdMoveFailures(
  common: Pick<Common, "metrics">,
  chains: readonly ChainConfig[],
): void {
  const counter = coldMoveFailedCounter(common);
  for (const chain of chains) {
    if (!chain.coldAddress) continue;
    for (const asset of hotCeilings(chain).keys())
      counter.inc({ chain_id: String(chain.chainId), asset }, 0);
  }
}

/** pg_advisory_xact_lock(COLD_MOVE_LOCK, chainId): one cold move requested per chain at a time. */
const COLD_MOVE_LOCK = 0x434f_4c44; // "COLD"

/**
 * A move of this (chain, hot wallet, asset) is open, or booked and not final yet, or failed less
 * than `failedRetryAfterMs` ago. One statement, each arm on its own partial index (migrations 0100,
 * 0108, 0114).
 */
async function moveInFlight(
  client: Pick<Pool, "query">,
  chainId: number,
  hot: string,
  asset: string,
  failedRetryAfterMs: number,
): Promise<boolean> {
  // A booked move not final yet may be reorged out and open again (one open move per asset);
  // and the ledger is sure of the hot balance only once it is final. A move that failed (refused
  // before a nonce: a cold address that reverts, a gas estimate the node refuses; or reverted at a
  // final block) most likely fails again while its cause stands: retried every tick it would only
  // pile up moves, holds and voids (and burn gas when it reverts on chain), as a failed sweep would.
  const { rowCount } = await client.query(
    `SELECT 1 FROM custody.cold_moves
      WHERE chain_id = $1 AND hot_wallet = $2 AND asset = $3
        AND (status = 'open' OR (status = 'booked' AND final_at IS NULL)
             OR (status = 'failed'
                 AND settled_at > now() - make_interval(secs => $4::double precision / 1000)))
      LIMIT 1`,
    [chainId, hot, asset, failedRetryAfterMs],
  );
  return (rowCount ?? 0) > 0;
}

type Deps = { common: Common; pool: Pool; ledger: Ledger; adapter: EvmAdapter; chain: ChainConfig };

export type StartedColdMove = { id: string; asset: string; amount: bigint };

export async function startColdMoves({
  common,
  pool,
  ledger,
  adapter,
  chain,
  hotWallets: configured,
  noSignerSeen = new Map(),
  failedRetryAfterMs = chain.sweepIntervalMs * 10,
}: Deps & {
  /** The config's `hotWallets[]`: which registered wallets a signer serves (noSigner.ts). */
  hotWallets: readonly HotWalletConfig[];
  /** Excesses without a signer logged at the last pass (createSweeper keeps them). */
  noSignerSeen?: NoSignerSeen;
  /** Back-off for a (hot wallet, asset) whose last move failed (default ten sweep intervals). */
  failedRetryAfterMs?: number;
}): Promise<StartedColdMove[]> {
  const ceilings = hotCeilings(chain);
  if (ceilings.size === 0 || !chain.coldAddress) return [];
  const cold = chain.coldAddress.toLowerCase();
  const started: StartedColdMove[] = [];
  const noSigner: NoSignerExcess[] = [];
  const signed = await signedHotWallets(pool, chain, configured);
  // Once per pass, not per (wallet, asset): it only rises, so this read counts at least as much
  // as unfinal as a later one would.
  const finalized = await readFinalized(pool, chain.chainId);
  // Every hot wallet of the chain, not only the factories' destinations (where sweeps deliver): a
  // rotation's new wallet deployed nothing, and value booked into it above its ceiling (its
  // float, funded from cold) stayed hot for good. A wallet that left the config was drained and
  // defunded first (docs/deploy.md): nothing to move; else no move is requested (no signer would
  // send it), and its excess is reported (noSigner.ts).
  for (const hot of await hotWallets(pool, chain.chainId)) {
    for (const [asset, ceiling] of ceilings) {
      if (await moveInFlight(pool, chain.chainId, hot, asset, failedRetryAfterMs)) continue;
      const assetId = assetIdOf(chain.chainId, asset);
      // No account yet (nothing swept to this wallet in this asset): nothing to move.
      const available = (client?: PoolClient) =>
        ledger
          .getAccount({ assetId, name: hotAccount(hot) }, client ? { client } : {})
          .then((a) => a?.available ?? 0n);
      const [balance, onChain] = await Promise.all([
        available(),
        (asset === zeroAddress
          ? adapter.getNativeBalance(getAddress(hot))
          : adapter
              .getTokenBalances({ token: getAddress(asset), holders: [getAddress(hot)] })
              .then((b) => b[0] ?? 0n)
        ).catch((error: unknown) => {
          if (!isUnreadBalance(error)) throw error;
          reportUnreadBalance(common, { chainId: chain.chainId, asset, pass: "cold_move", error });
          return undefined;
        }),
      ]);
      // Unread is not 0: this asset waits for the next pass, while the others are still moved
      // and the sweeps after this step still planned (unreadBalance.ts). An excess without a
      // signer reported before stands (not ended by a read that says nothing).
      if (onChain === undefined) {
        const last = lastNoSigner(noSignerSeen, hot, asset);
        if (last) noSigner.push(last);
        continue;
      }
      // Value booked in whose block is not final is not counted: a reorg may take a sweep's
      // deposit out (the re-sent sweep then brings less) or drop an operator's funding for good,
      // but a cold move's bytes keep their amount. Native: a wallet that holds less is refused at
      // every resend, its nonce never mines and every later request waits (a frozen wallet).
      // Token: the move reverts only if the wallet holds less; else it is paid with the tokens
      // held for withdrawals, which are then left without them
      // (coldMoveUnfinalTokenSweep/coldMoveUnfinalFunding.integration.test.ts).
      const [swept, funded] = await Promise.all([
        unfinalSweptIn(pool, chain.chainId, hot, asset),
        unfinalFundings(pool, { chainId: chain.chainId, wallet: hot, asset, finalized }),
      ]);
      const unfinal = swept + funded;
      const sized = (ledgerAvailable: bigint) =>
        excessOverCeiling({
          ledgerAvailable: ledgerAvailable - unfinal,
          onChain: onChain - unfinal,
          ceiling,
        });
      const excess = sized(balance);
      if (excess === 0n) continue;
      if (!signed.has(hot)) {
        noSigner.push({ wallet: hot, asset, excess });
        continue;
      }
      const id = `cold_move:${chain.chainId}:${randomUUID()}`;
      const amount = await withTransaction(pool, async (client): Promise<bigint | undefined> => {
        // The readings above took no lock and may be stale by the time of this write (a slow
        // node): another worker's move may have been requested and even booked meanwhile (no
        // longer `open`, so the one-open index lets this one in), or a withdrawal held. Checked
        // again under a per-chain lock, the hold below sized on the lower ledger balance: the
        // value is never held twice, and the wallet keeps its ceiling.
        await client.query("SELECT pg_advisory_xact_lock($1, $2)", [COLD_MOVE_LOCK, chain.chainId]);
        if (await moveInFlight(client, chain.chainId, hot, asset, failedRetryAfterMs)) {
          return undefined;
        }
        const now = await available(client);
        // biome-ignore lint/complexity/useMathMinMax: Math.min does not take bigints
        const amount = sized(now < balance ? now : balance);
        if (amount === 0n) return undefined;
        // The partial unique index makes a concurrent second move for the same asset a no-op.
        const inserted = await client.query(
          `INSERT INTO custody.cold_moves (id, chain_id, hot_wallet, cold_address, asset, amount)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (chain_id, hot_wallet, asset) WHERE status = 'open' DO NOTHING`,
          [id, chain.chainId, hot, cold, asset, amount.toString()],
        );
        if (inserted.rowCount !== 1) return undefined;
        // The cold address holds custody money from now on: the indexer watches it and
        // reconciliation counts it in reserves (without it a cold move reads as a shortfall).
        const watched = await addWatchedAddresses(
          client,
          [{ chainId: chain.chainId, address: cold, kind: "cold", owner: "cold-wallet" }],
          { ifAbsent: true },
        );
        if (watched.length === 1) await notifyWatchedAddress(client, chain.chainId, [cold]);
        assertBooked(
          await ledger.createTransfers(
            [
              coldMoveHold({
                chainId: chain.chainId,
                moveId: id,
                hotWallet: hot,
                coldAddress: cold,
                asset,
                amount,
                generation: 0,
              }),
            ],
            { client },
          ),
          `cold move ${id}`,
        );
        await requestTransaction(client, {
          id,
          chainId: chain.chainId,
          from: hot,
          ...(asset === zeroAddress
            ? { to: cold, value: amount }
            : {
                to: asset,
                value: 0n,
                data: encodeFunctionData({
                  abi: erc20Abi,
                  functionName: "transfer",
                  args: [getAddress(cold), amount],
                }),
              }),
          kind: "cold_move",
          refId: id,
        });
        return amount;
      });
      if (amount === undefined) continue;
      common.logger.info({
        msg: "cold move requested",
        chain_id: chain.chainId,
        cold_move_id: id,
        asset,
        amount: amount.toString(),
        ceiling: ceiling.toString(),
      });
      started.push({ id, asset, amount });
    }
  }
  reportNoSigner(common, chain, noSigner, noSignerSeen);
  return started;
}

/** The chain's registered hot wallets (lowercase, in address order). */
async function hotWallets(pool: Pool, chainId: number): Promise<string[]> {
  const wallets = await loadCustodyWallets(pool, chainId);
  return [...wallets]
    .filter(([, kind]) => kind === "hot")
    .map(([address]) => address)
    .sort();
}

/** What booked sweeps not final yet moved into `hot` in `asset` (they may still leave with a reorg). */
async function unfinalSweptIn(
  pool: Pool,
  chainId: number,
  hot: string,
  asset: string,
): Promise<bigint> {
  const { rows } = await pool.query<{ swept: string }>(
    `SELECT COALESCE(sum(i.swept), 0)::text AS swept
       FROM custody.sweeps s JOIN custody.sweep_items i ON i.sweep_id = s.id
      WHERE s.chain_id = $1 AND s.hot_wallet = $2 AND i.asset = $3
        AND s.status = 'booked' AND s.final_at IS NULL`,
    [chainId, hot, asset],
  );
  return BigInt(rows[0]!.swept);
}

type OpenMove = {
  id: string;
  hot_wallet: string;
  cold_address: string;
  asset: string;
  amount: bigint;
  hold_generation: number;
};

/**
 * Post (booked) or void (failed) the move's current hold from the signer's outcome, booking the
 * gas with it under the hold's generation; undefined: not final enough yet. A void needs evidence:
 * refused before a nonce was taken, decided at a final block, or failed by an operator.
 */
export async function settleColdMoves({
  common,
  pool,
  ledger,
  chain,
}: Deps): Promise<{ id: string; status: "booked" | "failed" }[]> {
  const log = common.logger.child({ component: "cold_moves", chain_id: chain.chainId });
  const { rows: open } = await pool.query<OpenMove>(
    `SELECT id, hot_wallet, cold_address, asset, amount, hold_generation FROM custody.cold_moves
     WHERE chain_id = $1 AND status = 'open' ORDER BY created_at`,
    [chain.chainId],
  );
  if (open.length === 0) return [];
  const outcomes = new Map(
    (await getTxOutcomes(pool, { requestIds: open.map((m) => m.id) })).map((o) => [o.requestId, o]),
  );
  const settled: { id: string; status: "booked" | "failed" }[] = [];
  for (const m of open) {
    const o = outcomes.get(m.id);
    const settlement = o && settlementOf(o);
    if (!o || !settlement) continue;
    const success = settlement === "booked";
    if (!success && !failureIsEvidenced(o)) {
      // A `failed` without any evidence is a signer bug: the hold stands (withdrawals do the same).
      log.error({
        msg: "signer reported a cold move failed without a final block or an operator; the hold is kept",
        cold_move_id: m.id,
        error_code: o.errorCode,
      });
      continue;
    }
    // The signer records the fact position of the value transfer (`tx` or `transfer:<n>`). A
    // token that took a fee on the transfer logs less than was sent to the cold address, so no
    // fact carries the whole amount: the signer records where each part went, and each is booked
    // against its own fact (as a withdrawal of such a token is). Left open instead, its hold never
    // posted and no later move of the asset could start (one open move per asset).
    const paid = success ? paidTransfer(o, m) : undefined;
    if (paid === null) {
      // Neither a position nor the token's fee (a signer that has not read them yet: the
      // broadcaster's fee-on-transfer recovery fills them), or fees as large as the move: it
      // waits, its hold standing. Thrown, it failed every tick of the chain before any new sweep
      // was planned.
      log.error({
        msg: "the signer recorded no Transfer position for the cold move; it stays open, its hold kept",
        cold_move_id: m.id,
        tx_hash: o.txHash,
        err: new SweepReceiptError(
          m.id,
          "the signer recorded no Transfer position for the cold move",
        ),
      });
      continue;
    }
    const done = await withTransaction(pool, async (client) => {
      const lock = await client.query<{
        status: string;
        hold_generation: number;
        failure_counted: boolean;
      }>(
        `SELECT status, hold_generation, failure_counted FROM custody.cold_moves
          WHERE id = $1 FOR UPDATE`,
        [m.id],
      );
      const now = lock.rows[0];
      if (now?.status !== "open" || now.hold_generation !== m.hold_generation) return undefined;
      const ids = coldMoveTransferIds(m.id, m.hold_generation);
      const ref = (p: PaidTransfer, at: string) => ({
        chainId: chain.chainId,
        txHash: p.txHash,
        position: at,
      });
      const transfers: TransferInput[] = [];
      if (paid?.charged) {
        const { charged } = paid;
        // What left the hot wallet, less the token's fees, went to the cold address; the rest of
        // the hold is released and booked as those fees, the custody's cost of the move.
        transfers.push({
          type: "post",
          id: ids.post,
          pendingId: ids.hold,
          amount: m.amount - paid.tokenFees,
          chainRef: ref(paid, charged.received.position),
        });
        charged.fees.forEach((f, index) => {
          transfers.push(
            coldMoveTokenFee({
              chainId: chain.chainId,
              moveId: m.id,
              hotWallet: m.hot_wallet,
              asset: m.asset,
              generation: m.hold_generation,
              index,
              fee: f.amount,
              chainRef: ref(paid, f.position),
            }),
          );
        });
      } else {
        transfers.push(
          holdSettlement({
            pendingId: ids.hold,
            postId: ids.post,
            voidId: ids.void,
            chainRef: paid?.position ? ref(paid, paid.position) : undefined,
          }),
        );
      }
      const fee = o.fee ?? 0n;
      if (o.txHash && fee > 0n) {
        transfers.push(
          gasTransfer({
            chainId: chain.chainId,
            txHash: o.txHash,
            hotWallet: m.hot_wallet,
            fee,
            memo: `gas of cold move ${m.id}`,
            generation: m.hold_generation,
          }),
        );
      }
      assertBooked(await ledger.createTransfers(transfers, { client }), `cold move ${m.id}`);
      const next: "booked" | "failed" = success ? "booked" : "failed";
      await client.query(
        `UPDATE custody.cold_moves SET status = $2, tx_hash = $3, fee = $4, settled_at = now(),
           booked_generation = $5, final_at = $6, failure_counted = failure_counted OR $2 = 'failed'
         WHERE id = $1`,
        [
          m.id,
          next,
          o.txHash,
          o.fee?.toString() ?? null,
          o.reorgs,
          // Booked in a final block (or failed, which is terminal): nothing left to follow.
          !success || o.status === "finalized" ? new Date() : null,
        ],
      );
      return { next, counted: now.failure_counted };
    });
    if (!done) continue;
    const { next: status, counted } = done;
    settled.push({ id: m.id, status });
    const fields = { cold_move_id: m.id, tx_hash: o.txHash, hold_generation: m.hold_generation };
    if (status === "booked") {
      log.info({ msg: "cold move booked", ...fields });
    } else {
      // Once per failed move, so once per retry window: no move of the asset is requested in it.
      // A move reopened after a deep reorg undid its failure and failed again is not counted again.
      if (!counted)
        coldMoveFailedCounter(common).inc({ chain_id: String(chain.chainId), asset: m.asset });
      log.warn({
        msg: "cold move failed (hold voided); the asset is not moved again until the retry window has passed",
        ...fields,
        asset: m.asset,
        cold_address: m.cold_address,
        error_code: o.errorCode,
      });
    }
  }
  return settled;
}
