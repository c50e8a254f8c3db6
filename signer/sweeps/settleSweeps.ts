/**
 * Settle sweeps whose signer request reached a final status. Confirmed and successful: read the
 * receipt, take the Swept events (what really moved, which may include value not yet credited),
 * and in one transaction book one sweep transfer per (address, asset) plus the gas, record the
 * amounts and mark the sweep booked. Reverted: book the gas, mark it failed. Failed unsent: mark it
 * failed. Either failure frees the addresses, so the next tick sweeps them again. The row lock and
 * the deterministic transfer ids make settlement exactly-once under crashes and concurrent workers.
 */
import {
  type Address,
  getAddress,
  type Hex,
  pad,
  parseEventLogs,
  type TransactionReceipt,
  zeroAddress,
} from "viem";
import { forwarderFactory } from "../../chains/contracts/index.js";
import type { EvmAdapter } from "../../chains/evm/createEvmAdapter.js";
import { TRANSFER_TOPIC } from "../../chains/evm/createEvmAdapter.js";
import { transferPosition } from "../../chains/evm/transferPosition.js";
import type { ChainRef, Ledger, NewTransfer } from "../../ledger/index.js";
import type { Common } from "../../ops/common.js";
import type { ChainConfig } from "../../ops/config.js";
import { type Pool, withTransaction } from "../../ops/db.js";
import { assertBooked, gasTransfer, sweepTransfer } from "./bookings.js";
import { SweepReceiptError } from "./errors.js";

export type SweptAmount = { address: string; asset: string; amount: bigint; chainRef?: ChainRef };

type SettleableRow = {
  id: string;
  hot_wallet: string;
  factory: string;
  request_status: "confirmed" | "failed";
  tx_hash: string | null;
  receipt_success: boolean | null;
  fee: string | null;
};

const SETTLEABLE = `
  SELECT s.id, s.hot_wallet, s.factory, r.status AS request_status, r.tx_hash, r.receipt_success,
         r.fee::text
  FROM custody.sweeps s JOIN custody.tx_requests r ON r.id = s.id
  WHERE s.chain_id = $1 AND s.status = 'open' AND r.status IN ('confirmed', 'failed')
  ORDER BY s.created_at`;

export type SettledSweep = { id: string; status: "booked" | "failed"; transfers: number };

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
  const { rows } = await pool.query<SettleableRow>(SETTLEABLE, [chain.chainId]);
  const settled: SettledSweep[] = [];
  for (const row of rows) {
    const success = row.request_status === "confirmed" && row.receipt_success === true;
    // Chain reads happen before the transaction; they are facts of a confirmed block.
    const swept = success ? await sweptAmounts({ adapter, chain, row }) : ([] as SweptAmount[]);
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
        }),
      );
      const fee = row.fee === null ? 0n : BigInt(row.fee);
      if (row.tx_hash && fee > 0n) {
        transfers.push(
          gasTransfer({
            chainId: chain.chainId,
            txHash: row.tx_hash,
            hotWallet: row.hot_wallet,
            fee,
            memo: `gas of sweep ${row.id}`,
          }),
        );
      }
      assertBooked(await ledger.createTransfers(transfers, { client }), `sweep ${row.id}`);
      if (swept.length > 0) {
        await client.query(
          `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
           SELECT $1, $2, u.address, d.salt, u.asset, 0, u.amount
           FROM unnest($3::text[], $4::text[], $5::numeric[]) AS u(address, asset, amount)
           JOIN custody.deposit_addresses d ON d.chain_id = $2 AND d.address = u.address
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
      await client.query(
        "UPDATE custody.sweep_items SET swept = 0 WHERE sweep_id = $1 AND swept IS NULL",
        [row.id],
      );
      const status = success ? "booked" : "failed";
      await client.query(
        `UPDATE custody.sweeps SET status = $2, tx_hash = $3, fee = $4, settled_at = now()
         WHERE id = $1`,
        [row.id, status, row.tx_hash, row.fee],
      );
      return { id: row.id, status, transfers: transfers.length } as const;
    });
    if (!result) continue;
    settled.push(result);
    const fields = {
      chain_id: chain.chainId,
      sweep_id: row.id,
      tx_hash: row.tx_hash,
      transfers: result.transfers,
    };
    if (result.status === "booked") log.info({ msg: "sweep booked", ...fields });
    else log.warn({ msg: "sweep failed; its addresses will be swept again", ...fields });
  }
  return settled;
}

/** The Swept events of the sweep's receipt, each with the chain fact it explains. */
async function sweptAmounts({
  adapter,
  chain,
  row,
}: {
  adapter: EvmAdapter;
  chain: ChainConfig;
  row: SettleableRow;
}): Promise<SweptAmount[]> {
  if (!row.tx_hash) throw new SweepReceiptError(row.id, "confirmed without a tx hash");
  const hash = row.tx_hash as Hex;
  const receipt = await adapter.client.getTransactionReceipt({ hash });
  const hot = getAddress(row.hot_wallet);
  const events = parseEventLogs({
    abi: forwarderFactory.abi,
    logs: receipt.logs.filter((l) => l.address.toLowerCase() === row.factory),
    eventName: "Swept",
  }) as unknown as {
    logIndex: number;
    args: { depositAddress: Address; token: Address; amount: bigint };
  }[];
  const frames =
    chain.traces && events.some((e) => e.args.token === zeroAddress)
      ? await nativeFrames(adapter, receipt)
      : [];
  return events.map((e) => {
    const address = e.args.depositAddress.toLowerCase();
    const asset = e.args.token.toLowerCase();
    let position: string | undefined;
    if (asset === zeroAddress) {
      const frame = frames.find(
        (f) =>
          f.from.toLowerCase() === address &&
          f.to.toLowerCase() === hot.toLowerCase() &&
          f.value === e.args.amount,
      );
      position = frame ? `trace:${frame.path.join(".")}` : undefined;
    } else {
      const transfer = receipt.logs
        .filter(
          (l) =>
            l.logIndex < e.logIndex &&
            l.address.toLowerCase() === asset &&
            l.topics[0] === TRANSFER_TOPIC &&
            l.topics[1] === pad(address as Hex) &&
            l.topics[2]?.toLowerCase() === pad(hot).toLowerCase() &&
            BigInt(l.data) === e.args.amount,
        )
        .pop();
      if (!transfer) {
        throw new SweepReceiptError(row.id, `no Transfer log for ${asset} from ${address}`);
      }
      position = transferPosition(receipt.logs, transfer.logIndex, [
        asset,
        ...chain.tokens.map((t) => t.address),
      ]);
    }
    return {
      address,
      asset,
      amount: e.args.amount,
      ...(position ? { chainRef: { chainId: chain.chainId, txHash: hash, position } } : {}),
    };
  });
}

async function nativeFrames(adapter: EvmAdapter, receipt: TransactionReceipt) {
  const [frames] = await adapter.getCallFrames([
    { number: receipt.blockNumber, txHashes: [receipt.transactionHash] },
  ]);
  return (frames ?? []).filter(
    (f) => f.txHash.toLowerCase() === receipt.transactionHash && f.kind === "call" && !f.reverted,
  );
}
