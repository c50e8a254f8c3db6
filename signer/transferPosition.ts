/**
 * Where a request's value transfer sits in its mined transaction, in the indexer's fact identity
 * (shared contract 2): `tx` for a native transfer, `transfer:<n>` for an ERC-20 `transfer(to, amount)`
 * where n is the 0-based ordinal of its Transfer log among the listed-token Transfer logs of the
 * transaction (logIndex order). Other calls (sweeps, contract calls, cancels) have no single
 * transfer: null.
 *
 * A token that takes a fee on transfer (PAXG-style; USDT has the switch) logs less than the
 * requested amount to the recipient and logs its fee as other Transfers out of the wallet in the
 * same transaction. `transferPosition` stays null for it (no fact carries the whole amount);
 * `feeOnTransfer` says where each part went, so a caller books one transfer per fact.
 */
import { decodeFunctionData, erc20Abi, type Hex, pad } from "viem";
import { TRANSFER_TOPIC } from "../chains/evm/createEvmAdapter.js";
import { transferPositions } from "../chains/evm/transferPosition.js";

export type TransferPosition = { position: string; logIndex: number | null };

/** One Transfer log of the withdrawn token out of the wallet: its fact position and amount. */
export type PositionedTransfer = { position: string; logIndex: number; amount: bigint };

/**
 * A `transfer(to, amount)` the token charged a fee on: what the recipient's Transfer carries, and
 * the token's other Transfers out of the wallet in the transaction (to its collector, or a burn).
 */
export type FeeOnTransfer = { received: PositionedTransfer; fees: PositionedTransfer[] };

export type ReceiptLogLike = {
  address: string;
  topics: readonly (string | null)[];
  data: string;
  logIndex: number | null;
};

type SentTx = { from: string; to: string; value: bigint; data: string };

/** The wallet's Transfer logs of the called token in the tx, for an ERC-20 `transfer()` call. */
function walletTransfers(
  tx: SentTx,
  logs: readonly ReceiptLogLike[],
  listedTokens: readonly string[],
) {
  if (!tx.data.toLowerCase().startsWith("0xa9059cbb")) return null;
  let recipient: string;
  let amount: bigint;
  try {
    const call = decodeFunctionData({ abi: erc20Abi, data: tx.data as Hex });
    if (call.functionName !== "transfer") return null;
    [recipient, amount] = call.args as [string, bigint];
  } catch {
    return null;
  }
  const token = tx.to.toLowerCase();
  const from = pad(tx.from.toLowerCase() as Hex).toLowerCase();
  // The indexer's one ordinal rule (chains/evm/transferPosition.ts), with the called token listed.
  const positions = transferPositions(logs, [...listedTokens, token]);
  const out = logs
    .filter(
      (l) =>
        l.logIndex !== null &&
        positions.has(l.logIndex) &&
        l.address.toLowerCase() === token &&
        l.topics[1]?.toLowerCase() === from &&
        // A token's log is untrusted input: an amount is one 32-byte word or no amount.
        /^0x[0-9a-f]{64}$/i.test(l.data),
    )
    .sort((a, b) => a.logIndex! - b.logIndex!)
    .map((l) => ({
      to: l.topics[2]!.toLowerCase(),
      position: positions.get(l.logIndex!)!,
      logIndex: l.logIndex!,
      amount: BigInt(l.data),
    }));
  return { recipient: pad(recipient.toLowerCase() as Hex).toLowerCase(), amount, out };
}

export function transferPosition(
  tx: SentTx,
  logs: readonly ReceiptLogLike[],
  listedTokens: readonly string[],
): TransferPosition | null {
  if (tx.data === "0x") {
    // A 0-value self-transfer is a cancel, not a transfer.
    return tx.value > 0n ? { position: "tx", logIndex: null } : null;
  }
  const call = walletTransfers(tx, logs, listedTokens);
  const ours = call?.out.find((l) => l.to === call.recipient && l.amount === call.amount);
  return ours ? { position: ours.position, logIndex: ours.logIndex } : null;
}

/**
 * For a `transfer()` whose recipient's Transfer carries less than the requested amount: that
 * Transfer (the first from the wallet to the recipient) and the wallet's other Transfers of the
 * token in the tx. Null when a Transfer carries the whole amount (`transferPosition` finds it),
 * when there is no Transfer to the recipient, or for any other call.
 */
export function feeOnTransfer(
  tx: SentTx,
  logs: readonly ReceiptLogLike[],
  listedTokens: readonly string[],
): FeeOnTransfer | null {
  if (tx.data === "0x") return null;
  const call = walletTransfers(tx, logs, listedTokens);
  if (!call || call.out.some((l) => l.to === call.recipient && l.amount === call.amount))
    return null;
  const received = call.out.find((l) => l.to === call.recipient);
  if (!received || received.amount >= call.amount) return null;
  const fees = call.out.filter((l) => l !== received);
  const strip = ({ position, logIndex, amount }: PositionedTransfer) => ({
    position,
    logIndex,
    amount,
  });
  return { received: strip(received), fees: fees.map(strip) };
}

/**
 * Whether a successful `transfer()` call moved nothing: the called token logged no Transfer out of
 * the wallet at all (any shape, to anyone), as a token that returns false instead of reverting
 * (paused, a blacklist, a short balance) does. ERC-20 requires the event on every transfer, and
 * deposits are credited from it, so a token that moves value without it is not one the custody can
 * list. Any Transfer out of the wallet (a fee-on-transfer token's fee alone, a recipient's of an
 * odd amount) is not this: the payment stays unbooked for a human (WITHDRAWAL_OUTCOME_INCOMPLETE),
 * never failed, so a payment that did move value never has its hold released. The receipt's logs
 * must be whole (chainView takes none without them). False for any other call.
 */
export function transferMovedNothing(tx: SentTx, logs: readonly ReceiptLogLike[]): boolean {
  if (tx.data === "0x" || !walletTransfers(tx, logs, [])) return false;
  const token = tx.to.toLowerCase();
  const from = pad(tx.from.toLowerCase() as Hex).toLowerCase();
  return !logs.some(
    (l) =>
      l.address.toLowerCase() === token &&
      l.topics[0]?.toLowerCase() === TRANSFER_TOPIC &&
      l.topics[1]?.toLowerCase() === from,
  );
}

/** As custody.tx_requests.fee_on_transfer stores it (amounts as decimal strings). */
type StoredTransfer = { position: string; logIndex: number; amount: string };
type StoredFeeOnTransfer = { received: StoredTransfer; fees: StoredTransfer[] };

export function feeOnTransferJson(f: FeeOnTransfer): string {
  const stored = (t: PositionedTransfer): StoredTransfer => ({ ...t, amount: t.amount.toString() });
  return JSON.stringify({ received: stored(f.received), fees: f.fees.map(stored) });
}

/** The stored column (pg parses JSONB) back to bigint amounts. */
export function feeOnTransferFromRow(row: StoredFeeOnTransfer | null): FeeOnTransfer | null {
  if (row === null) return null;
  const parsed = (t: StoredTransfer): PositionedTransfer => ({ ...t, amount: BigInt(t.amount) });
  return { received: parsed(row.received), fees: row.fees.map(parsed) };
}
