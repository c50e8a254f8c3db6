/**
 * Settle open sweeps from the signer's outcomes (getTxOutcomes; never a receipt fetched here nor
 * the signer's tables read). Confirmed and successful: take the Swept events of the sweep's
 * transaction from its block (what really moved, which may include value not yet credited), and
 * in one transaction book one sweep transfer per (address, asset) plus the gas, record the amounts
 * and mark the sweep booked. Reverted or cancelled (failed at a final block): book the gas, mark
 * it failed. Failed unsent: mark it failed. Either failure frees the addresses, so a later tick
 * sweeps them again; so it needs evidence (failureIsEvidenced: refused before a nonce was taken,
 * decided at a final block, or failed by an operator), else the sweep stays open and books nothing
 * (a `failed` without it is a signer bug, and the transaction may yet mine). Any other outcome
 * (in flight, receipt_unknown, needs_review) keeps the sweep open and its addresses out of
 * planning. A booked sweep is followed to finality (followSweeps.ts). The row lock and the deterministic transfer ids make
 * settlement exactly-once under crashes, concurrent workers and repeated passes.
 */
import {
  type Address,
  formatLog,
  getAddress,
  type Hex,
  pad,
  parseEventLogs,
  zeroAddress,
} from "viem";
import { forwarderFactory } from "../../chains/contracts/index.js";
import type { EvmAdapter, TracedBlock } from "../../chains/evm/createEvmAdapter.js";
import { transferPosition } from "../../chains/evm/transferPosition.js";
import { type ChainConfig, NoHealthyEndpointError, RpcResponseError } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import type { ChainRef, Ledger, NewTransfer } from "../../ledger/index.js";
import { failureIsEvidenced, getTxOutcomes, type TxOutcome } from "../outcomes.js";
import { assertBooked, gasTransfer, sweepTransfer } from "./bookings.js";
import { SweepReceiptError } from "./errors.js";
import { sweepMovedNothingCounter } from "./movedNothing.js";
import { sweepBooked } from "./sweepable.js";

export type SweptAmount = { address: string; asset: string; amount: bigint; chainRef?: ChainRef };

type OpenSweep = { id: string; hot_wallet: string; factory: string };

const OPEN = `
  SELECT id, hot_wallet, factory FROM custody.sweeps
  WHERE chain_id = $1 AND status = 'open'
  ORDER BY created_at`;

export type SettledSweep = { id: string; status: "booked" | "failed"; transfers: number };

/** Settle (booked) or fail, or undefined: the outcome is not final enough yet. */
export function settlementOf(o: TxOutcome): "booked" | "failed" | undefined {
  if ((o.status === "confirmed" || o.status === "finalized") && o.receiptSuccess === true)
    return "booked";
  if (o.status === "failed") return "failed";
  return undefined;
}

export async function settleSweeps({
  common,
  pool,
  ledger,
  adapter,
  chain,
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  adapter: EvmAdapter;
  chain: ChainConfig;
}): Promise<SettledSweep[]> {
  const log = common.logger.child({ component: "sweeps", chain_id: chain.chainId });
  const { rows } = await pool.query<OpenSweep>(OPEN, [chain.chainId]);
  if (rows.length === 0) return [];
  const outcomes = new Map(
    (await getTxOutcomes(pool, { requestIds: rows.map((r) => r.id) })).map((o) => [o.requestId, o]),
  );
  const settled: SettledSweep[] = [];
  for (const row of rows) {
    const outcome = outcomes.get(row.id);
    const status = outcome && settlementOf(outcome);
    if (!outcome || !status) continue;
    if (status === "failed" && !failureIsEvidenced(outcome)) {
      // Failing it would free its addresses and book its gas, and leave its value unbooked if the
      // transaction mines after all: it stays open, its addresses out of planning (as cold moves).
      log.error({
        msg: "signer reported a sweep failed without a final block or an operator; it stays open",
        sweep_id: row.id,
        tx_hash: outcome.txHash,
        error_code: outcome.errorCode,
      });
      continue;
    }
    // Chain reads happen before the transaction; they are facts of the confirmed block.
    let swept: SweptAmount[] | undefined = [];
    if (status === "booked") {
      try {
        swept = await sweptAmounts({ adapter, chain, row, outcome });
      } catch (error) {
        // A node that does not serve the block yet (lagging, still indexing), or every endpoint
        // refusing a read of it (never evidence): the next pass. Thrown, one sweep stopped the
        // chain's pass (the other sweeps, cold moves, new sweeps) for as long as it lasted.
        const refused = error instanceof RpcResponseError;
        if (!(error instanceof BaseError && (error.retryable || refused))) throw error;
        const msg = "sweep settlement waits for the chain";
        if (refused) log.warn({ msg, sweep_id: row.id, err: error });
        else log.info({ msg, sweep_id: row.id, err: error });
        continue;
      }
    }
    if (swept === undefined) continue; // the node's block at that height is another: next pass
    const result = await withTransaction(pool, async (client) => {
      const lock = await client.query<{ status: string }>(
        "SELECT status FROM custody.sweeps WHERE id = $1 FOR UPDATE",
        [row.id],
      );
      if (lock.rows[0]?.status !== "open") return undefined; // another worker settled it
      const transfers: NewTransfer[] = swept.map((s) =>
        sweepTransfer({
          chainId: chain.chainId,
          sweepId: row.id,
          hotWallet: row.hot_wallet,
          address: s.address,
          asset: s.asset,
          amount: s.amount,
          chainRef: s.chainRef,
          generation: outcome.reorgs,
        }),
      );
      const fee = outcome.fee ?? 0n;
      if (outcome.txHash && fee > 0n) {
        transfers.push(
          gasTransfer({
            chainId: chain.chainId,
            txHash: outcome.txHash,
            hotWallet: row.hot_wallet,
            fee,
            memo: `gas of sweep ${row.id}`,
            generation: outcome.reorgs,
          }),
        );
      }
      assertBooked(await ledger.createTransfers(transfers, { client }), `sweep ${row.id}`);
      if (swept.length > 0) {
        await client.query(
          `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
           SELECT $1, $2, u.address, d.salt, u.asset, 0, u.amount
           FROM unnest($3::text[], $4::text[], $5::numeric[]) AS u(address, asset, amount)
           JOIN chain.deposit_forwarders d ON d.chain_id = $2 AND d.address = u.address
           ON CONFLICT (sweep_id, address, asset) DO UPDATE SET swept = EXCLUDED.swept`,
          [
            row.id,
            chain.chainId,
            swept.map((s) => s.address),
            swept.map((s) => s.asset),
            swept.map((s) => s.amount.toString()),
          ],
        );
      }
      // What the Swept events do not name did not move: recorded as 0, which backs the pair off.
      // `counted`: the item was counted as moving nothing when this sweep was booked before (it
      // was reorged out, unbooked and is booked again now): counted once per sweep, not per booking.
      const { rows: empty } = await client.query<{
        address: string;
        asset: string;
        planned: string;
        counted: boolean;
      }>(
        `UPDATE custody.sweep_items i SET swept = 0,
           moved_nothing_counted = i.moved_nothing_counted OR ($2 AND i.planned > 0)
           FROM custody.sweep_items o
          WHERE i.sweep_id = $1 AND i.swept IS NULL
            AND o.sweep_id = i.sweep_id AND o.address = i.address AND o.asset = i.asset
         RETURNING i.address, i.asset, i.planned::text, o.moved_nothing_counted AS counted`,
        [row.id, status === "booked"],
      );
      await client.query(
        `UPDATE custody.sweeps SET status = $2, tx_hash = $3, fee = $4, settled_at = now(),
           booked_generation = $5, final_at = $6
         WHERE id = $1`,
        [
          row.id,
          status,
          outcome.txHash,
          outcome.fee?.toString() ?? null,
          outcome.reorgs,
          // Booked in a final block (or failed): nothing left to follow.
          status === "failed" || outcome.status === "finalized" ? new Date() : null,
        ],
      );
      if (status === "booked") await sweepBooked(client, row.id);
      return { id: row.id, status, transfers: transfers.length, empty } as const;
    });
    if (!result) continue;
    settled.push({ id: result.id, status: result.status, transfers: result.transfers });
    if (result.status === "booked") {
      // Mined, and the chain did not let these pairs move (a blacklisting token): counted and
      // named, since one that never moves is a loss the custody team takes up with the issuer.
      for (const e of result.empty.filter((i) => BigInt(i.planned) > 0n && !i.counted)) {
        sweepMovedNothingCounter(common).inc({ chain_id: String(chain.chainId), asset: e.asset });
        log.warn({
          msg: "a deposit address's sweep moved none of an asset; the pair backs off, longer each time in a row",
          sweep_id: row.id,
          tx_hash: outcome.txHash,
          address: e.address,
          asset: e.asset,
          planned: e.planned,
        });
      }
    }
    const fields = {
      chain_id: chain.chainId,
      sweep_id: row.id,
      tx_hash: outcome.txHash,
      transfers: result.transfers,
      moved: swept.length,
    };
    if (result.status === "failed")
      log.warn({ msg: "sweep failed; its addresses will be swept again", ...fields });
    else if (swept.length === 0)
      log.warn({ msg: "sweep moved nothing; its addresses back off", ...fields });
    else log.info({ msg: "sweep booked", ...fields });
  }
  return settled;
}

/**
 * The Swept events of the sweep's transaction, each with the chain fact it explains, read from the
 * block the signer recorded. Undefined when the node's canonical block at that height is not that
 * block (it lags, or a reorg is being followed by the signer): never a conclusion from absence.
 */
async function sweptAmounts({
  adapter,
  chain,
  row,
  outcome,
}: {
  adapter: EvmAdapter;
  chain: ChainConfig;
  row: OpenSweep;
  outcome: TxOutcome;
}): Promise<SweptAmount[] | undefined> {
  const { txHash, blockHash, blockNumber } = outcome;
  if (!txHash || !blockHash || blockNumber === null) {
    throw new SweepReceiptError(row.id, "confirmed without a tx hash or block");
  }
  // Asked only of an endpoint at or past the block (a lagging or syncing first endpoint has none:
  // asked anyway, the sweep waited on it for as long as it lagged); none there yet: wait, quietly.
  const [header] = await adapter.getHeaders([blockNumber]).catch((error: unknown) => {
    if (error instanceof NoHealthyEndpointError) return [undefined];
    throw error;
  });
  if (!header?.hash || header.hash.toLowerCase() !== blockHash.toLowerCase()) return undefined;
  const hash = txHash.toLowerCase() as Hex;
  const hot = getAddress(row.hot_wallet);
  // By hash, and no logs believed only from a node that shows it has the block: a node that does
  // not know the hash may answer [] (no Swept events: the sweep would settle with nothing booked).
  const [factoryLogs = []] = await adapter.getLogsAtBlock([
    { blockHash, number: blockNumber, address: getAddress(row.factory) },
  ]);
  const events = parseEventLogs({
    abi: forwarderFactory.abi,
    logs: factoryLogs
      .filter((l) => l.transactionHash.toLowerCase() === hash)
      .map((l) => formatLog({ ...l, topics: l.topics as [Hex, ...Hex[]] })),
    eventName: "Swept",
  }) as unknown as {
    logIndex: number;
    args: { depositAddress: Address; token: Address; amount: bigint };
  }[];
  const tokens = [
    ...new Set([
      ...chain.tokens.map((t) => t.address.toLowerCase()),
      ...events.map((e) => e.args.token.toLowerCase()).filter((t) => t !== zeroAddress),
    ]),
  ] as Address[];
  const [blockTransfers] =
    tokens.length > 0
      ? await adapter.getTransferLogsAtBlock([{ blockHash, tokens, number: blockNumber }])
      : [[]];
  const txTransfers = (blockTransfers ?? []).filter(
    (l) => l.transactionHash.toLowerCase() === hash,
  );
  const frames =
    chain.traces && events.some((e) => e.args.token === zeroAddress)
      ? await nativeFrames(
          adapter,
          { number: blockNumber, hash: header.hash, txHashes: header.transactions },
          hash,
        )
      : [];
  return events.map((e) => {
    const address = e.args.depositAddress.toLowerCase();
    const asset = e.args.token.toLowerCase();
    let position: string | undefined;
    let amount = e.args.amount;
    if (asset === zeroAddress) {
      const frame = frames.find(
        (f) =>
          f.from.toLowerCase() === address &&
          f.to.toLowerCase() === hot.toLowerCase() &&
          f.value === e.args.amount,
      );
      position = frame ? `trace:${frame.path.join(".")}` : undefined;
    } else {
      // Not matched by amount: a token that takes a fee on transfer moves the Swept amount off the
      // address but the hot wallet receives less. What is booked is what the hot wallet received
      // (this Transfer, the chain fact); the fee's own Transfer is a fact reconciliation shows.
      const transfer = txTransfers
        .filter(
          (l) =>
            Number(BigInt(l.logIndex)) < e.logIndex &&
            l.address.toLowerCase() === asset &&
            l.topics[1]?.toLowerCase() === pad(address as Hex) &&
            l.topics[2]?.toLowerCase() === pad(hot).toLowerCase(),
        )
        .pop();
      if (!transfer) {
        throw new SweepReceiptError(row.id, `no Transfer log for ${asset} from ${address}`);
      }
      amount = BigInt(transfer.data);
      position = transferPosition(txTransfers, Number(BigInt(transfer.logIndex)), [
        asset,
        ...chain.tokens.map((t) => t.address),
      ]);
    }
    return {
      address,
      asset,
      amount,
      ...(position ? { chainRef: { chainId: chain.chainId, txHash: hash, position } } : {}),
    };
  });
}

/** The sweep's own value-moving calls, from the traces of its block (all its transactions). */
async function nativeFrames(adapter: EvmAdapter, block: TracedBlock, txHash: Hex) {
  const [frames] = await adapter.getCallFrames([block]);
  return (frames ?? []).filter(
    (f) => f.txHash.toLowerCase() === txHash && f.kind === "call" && !f.reverted,
  );
}
