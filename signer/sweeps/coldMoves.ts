/**
 * Hot/cold: a hot wallet keeps at most its per-asset ceiling; above it, the excess goes to the
 * chain's cold address through the same rails as a withdrawal: a ledger hold (custody:hot →
 * custody:cold) and a signer request in one transaction, then post on confirmation or void on
 * failure, and the gas booked either way. One open move per (chain, hot wallet, asset); the next
 * is sized after it settles.
 */
import { randomUUID } from "node:crypto";
import { encodeFunctionData, erc20Abi, getAddress, zeroAddress } from "viem";
import type { EvmAdapter } from "../../chains/evm/createEvmAdapter.js";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import {
  addWatchedAddresses,
  contractHotWallets,
  notifyWatchedAddress,
} from "../../indexers/index.js";
import {
  assetIdOf,
  holdSettlement,
  type Ledger,
  type TransferInput,
  transferId,
} from "../../ledger/index.js";
import { getTxOutcomes } from "../outcomes.js";
import { requestTransaction } from "../requests.js";
import { assertBooked, coldAccount, gasTransfer, hotAccount } from "./bookings.js";
import { SweepReceiptError } from "./errors.js";
import { settlementOf } from "./settleSweeps.js";

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

type Deps = { common: Common; pool: Pool; ledger: Ledger; adapter: EvmAdapter; chain: ChainConfig };

export type StartedColdMove = { id: string; asset: string; amount: bigint };

export async function startColdMoves({
  common,
  pool,
  ledger,
  adapter,
  chain,
}: Deps): Promise<StartedColdMove[]> {
  const ceilings = hotCeilings(chain);
  if (ceilings.size === 0 || !chain.coldAddress) return [];
  const cold = chain.coldAddress.toLowerCase();
  const started: StartedColdMove[] = [];
  // The hot wallets that accumulate swept value on this chain (the factories' destinations).
  for (const hot of await contractHotWallets(pool, chain.chainId)) {
    for (const [asset, ceiling] of ceilings) {
      const open = await pool.query(
        `SELECT 1 FROM custody.cold_moves
         WHERE chain_id = $1 AND hot_wallet = $2 AND asset = $3 AND status = 'open'`,
        [chain.chainId, hot, asset],
      );
      if (open.rowCount) continue;
      const assetId = assetIdOf(chain.chainId, asset);
      const [balance, onChain] = await Promise.all([
        // No account yet (nothing swept to this wallet in this asset): nothing to move.
        ledger.getAccount({ assetId, name: hotAccount(hot) }).then((a) => a?.available ?? 0n),
        asset === zeroAddress
          ? adapter.getNativeBalance(getAddress(hot))
          : adapter
              .getTokenBalances({ token: getAddress(asset), holders: [getAddress(hot)] })
              .then((b) => b[0] ?? 0n),
      ]);
      const amount = excessOverCeiling({ ledgerAvailable: balance, onChain, ceiling });
      if (amount === 0n) continue;
      const id = `cold_move:${chain.chainId}:${randomUUID()}`;
      const created = await withTransaction(pool, async (client) => {
        // The partial unique index makes a concurrent second move for the same asset a no-op.
        const inserted = await client.query(
          `INSERT INTO custody.cold_moves (id, chain_id, hot_wallet, cold_address, asset, amount)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (chain_id, hot_wallet, asset) WHERE status = 'open' DO NOTHING`,
          [id, chain.chainId, hot, cold, asset, amount.toString()],
        );
        if (inserted.rowCount !== 1) return false;
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
              {
                type: "pending",
                id: transferId(`cold_move:${id}`),
                assetId,
                debit: coldAccount(cold),
                credit: hotAccount(hot),
                amount,
                kind: "cold_move",
                memo: `cold move ${id}`,
              },
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
        return true;
      });
      if (!created) continue;
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
  return started;
}

type OpenMove = {
  id: string;
  hot_wallet: string;
  cold_address: string;
  asset: string;
  amount: bigint;
};

/** Post (booked) or void (failed) from the signer's outcome; undefined: not final enough yet. */
export async function settleColdMoves({
  common,
  pool,
  ledger,
  chain,
}: Deps): Promise<{ id: string; status: "booked" | "failed" }[]> {
  const { rows: open } = await pool.query<OpenMove>(
    `SELECT id, hot_wallet, cold_address, asset, amount FROM custody.cold_moves
     WHERE chain_id = $1 AND status = 'open' ORDER BY created_at`,
    [chain.chainId],
  );
  if (open.length === 0) return [];
  const outcomes = new Map(
    (await getTxOutcomes(pool, { requestIds: open.map((m) => m.id) })).map((o) => [o.requestId, o]),
  );
  const rows = open.flatMap((m) => {
    const o = outcomes.get(m.id);
    const settlement = o && settlementOf(o);
    if (!o || !settlement) return [];
    return [
      {
        ...m,
        success: settlement === "booked",
        tx_hash: o.txHash,
        fee: o.fee,
        position: o.transferPosition,
      },
    ];
  });
  const settled: { id: string; status: "booked" | "failed" }[] = [];
  for (const m of rows) {
    const success = m.success;
    // The signer records the fact position of the value transfer (`tx` or `transfer:<n>`).
    const position = success ? (m.position ?? (m.asset === zeroAddress ? "tx" : null)) : undefined;
    if (success && !position) {
      throw new SweepReceiptError(
        m.id,
        "the signer recorded no Transfer position for the cold move",
      );
    }
    const status = await withTransaction(pool, async (client) => {
      const lock = await client.query<{ status: string }>(
        "SELECT status FROM custody.cold_moves WHERE id = $1 FOR UPDATE",
        [m.id],
      );
      if (lock.rows[0]?.status !== "open") return undefined;
      const transfers: TransferInput[] = [
        holdSettlement({
          pendingId: transferId(`cold_move:${m.id}`),
          postId: transferId(`cold_move:${m.id}:post`),
          voidId: transferId(`cold_move:${m.id}:void`),
          chainRef:
            success && m.tx_hash && position
              ? { chainId: chain.chainId, txHash: m.tx_hash, position }
              : undefined,
        }),
      ];
      const fee = m.fee ?? 0n;
      if (m.tx_hash && fee > 0n) {
        transfers.push(
          gasTransfer({
            chainId: chain.chainId,
            txHash: m.tx_hash,
            hotWallet: m.hot_wallet,
            fee,
            memo: `gas of cold move ${m.id}`,
          }),
        );
      }
      assertBooked(await ledger.createTransfers(transfers, { client }), `cold move ${m.id}`);
      const next = success ? "booked" : "failed";
      await client.query(
        `UPDATE custody.cold_moves SET status = $2, tx_hash = $3, fee = $4, settled_at = now()
         WHERE id = $1`,
        [m.id, next, m.tx_hash, m.fee?.toString() ?? null],
      );
      return next;
    });
    if (!status) continue;
    settled.push({ id: m.id, status });
    common.logger.info({
      msg: status === "booked" ? "cold move booked" : "cold move failed (hold voided)",
      chain_id: chain.chainId,
      cold_move_id: m.id,
      tx_hash: m.tx_hash,
    });
  }
  return settled;
}
