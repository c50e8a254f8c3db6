/**
 * The signer's intake: callers insert a transaction request inside their own Postgres
 * transaction, so "the withdrawal is approved" and "a transaction is owed" commit together.
 */
import { getAddress, isAddress, isHex } from "viem";
import type { PoolClient } from "../foundation/db.js";
import { InvalidTxRequestError, TxRequestConflictError } from "./errors.js";
import type { Lease } from "./lease.js";

export type TxRequestInput = {
  /** Caller-chosen, deterministic (e.g. `withdrawal:<id>`); a repeat with the same contents is a no-op. */
  id: string;
  chainId: number;
  /** The hot wallet that sends (must be a configured hot wallet on that chain). */
  from: string;
  to: string;
  value: bigint;
  data?: `0x${string}` | undefined;
  /** Omitted: estimated by the signer before a nonce is taken. */
  gasLimit?: bigint | undefined;
  /** What the caller does with the outcome: `withdrawal`, `sweep`, `cold_move`, … */
  kind: string;
  /** The caller's own id (withdrawal id, sweep id) echoed in the outcome doorbell. */
  refId: string;
};

/**
 * The signer's own request status (callers read `getTxOutcomes`, outcomes.ts, not this):
 * `confirmed` is not final until `finalized_at` is set; `receipt_unknown` and `needs_review` are
 * never terminal; `failed` is.
 */
export type TxRequestStatus =
  | "pending"
  | "signed"
  | "broadcast"
  | "mined"
  | "confirmed"
  | "failed"
  | "receipt_unknown"
  | "needs_review";

export type TxOutcomeJob = {
  requestId: string;
  kind: string;
  refId: string;
  status: TxRequestStatus;
};

/** BullMQ queue on which the signer rings when an outcome callers act on changes (see broadcaster/doorbells.ts). */
export const TX_OUTCOMES_QUEUE = "tx-outcomes";
/** NOTIFY channel the broadcaster listens on; payload `<chainId>:<from lowercase>`. */
export const TX_REQUESTS_CHANNEL = "custody_tx_requests";

const MAX_UINT256 = (1n << 256n) - 1n;

function address(field: string, value: string): string {
  if (typeof value !== "string" || !isAddress(value, { strict: false })) {
    throw new InvalidTxRequestError(field, "must be a 0x-prefixed 20-byte hex address");
  }
  // A mixed-case address claims an EIP-55 checksum: it must be the right one.
  const body = value.slice(2);
  const mixed = body !== body.toLowerCase() && body !== body.toUpperCase();
  if (mixed && getAddress(value) !== value) {
    throw new InvalidTxRequestError(field, "has an invalid EIP-55 checksum");
  }
  return value.toLowerCase();
}

/** Validate and normalise a request (lowercase addresses and data); throws InvalidTxRequestError. */
export function normaliseTxRequest(input: TxRequestInput) {
  if (typeof input.id !== "string" || input.id.length < 1 || input.id.length > 200) {
    throw new InvalidTxRequestError("id", "must be 1 to 200 characters");
  }
  if (!Number.isSafeInteger(input.chainId) || input.chainId <= 0) {
    throw new InvalidTxRequestError("chainId", "must be a positive integer");
  }
  if (typeof input.value !== "bigint" || input.value < 0n || input.value > MAX_UINT256) {
    throw new InvalidTxRequestError("value", "must be a bigint in 0..2^256-1 (wei)");
  }
  const data = (input.data ?? "0x").toLowerCase();
  if (!isHex(data, { strict: true }) || data.length % 2 !== 0) {
    throw new InvalidTxRequestError("data", "must be 0x-prefixed hex with whole bytes");
  }
  if (
    input.gasLimit !== undefined &&
    (typeof input.gasLimit !== "bigint" || input.gasLimit < 21_000n || input.gasLimit > 30_000_000n)
  ) {
    throw new InvalidTxRequestError("gasLimit", "must be a bigint between 21000 and 30000000");
  }
  if (typeof input.kind !== "string" || !/^[a-z][a-z0-9_]*$/.test(input.kind)) {
    throw new InvalidTxRequestError("kind", "must be lowercase letters, digits and underscores");
  }
  if (typeof input.refId !== "string" || input.refId.length === 0) {
    throw new InvalidTxRequestError("refId", "must be a non-empty string");
  }
  return {
    id: input.id,
    chainId: input.chainId,
    from: address("from", input.from),
    to: address("to", input.to),
    value: input.value,
    data,
    gasLimit: input.gasLimit ?? null,
    kind: input.kind,
    refId: input.refId,
  };
}

const INSERT = `
  INSERT INTO custody.tx_requests (id, chain_id, from_address, to_address, value, data, gas_limit, kind, ref_id)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
  ON CONFLICT (id) DO NOTHING`;

const EXISTING = `
  SELECT chain_id, from_address, to_address, value, data,
         CASE WHEN gas_estimated THEN NULL ELSE gas_limit END AS gas_limit, kind, ref_id
  FROM custody.tx_requests WHERE id = $1`;

type ExistingRow = {
  /** int8: pg gives it as a string. */
  chain_id: string;
  from_address: string;
  to_address: string;
  value: bigint;
  data: string;
  gas_limit: bigint | null;
  kind: string;
  ref_id: string;
};

/**
 * Ask the signer to send a transaction. Call it inside the caller's own transaction (the client
 * must be in BEGIN); it is idempotent on `id`: a repeat with identical contents returns
 * `{ created: false }`, a repeat with different contents throws SIGNER_REQUEST_CONFLICT.
 * The broadcaster is woken by a NOTIFY that Postgres delivers only if the caller commits.
 */
export async function requestTransaction(
  client: PoolClient,
  input: TxRequestInput,
): Promise<{ id: string; created: boolean }> {
  const r = normaliseTxRequest(input);
  const inserted = await client.query(INSERT, [
    r.id,
    r.chainId,
    r.from,
    r.to,
    r.value.toString(),
    r.data,
    r.gasLimit?.toString() ?? null,
    r.kind,
    r.refId,
  ]);
  if (inserted.rowCount === 1) {
    await client.query("SELECT pg_notify($1, $2)", [TX_REQUESTS_CHANNEL, `${r.chainId}:${r.from}`]);
    return { id: r.id, created: true };
  }
  const { rows } = await client.query<ExistingRow>(EXISTING, [r.id]);
  const row = rows[0]!;
  const differs: string[] = [];
  if (Number(row.chain_id) !== r.chainId) differs.push("chainId");
  if (row.from_address !== r.from) differs.push("from");
  if (row.to_address !== r.to) differs.push("to");
  if (row.value !== r.value) differs.push("value");
  if (row.data !== r.data) differs.push("data");
  if (row.gas_limit !== r.gasLimit) differs.push("gasLimit");
  if (row.kind !== r.kind) differs.push("kind");
  if (row.ref_id !== r.refId) differs.push("refId");
  if (differs.length > 0) throw new TxRequestConflictError(r.id, differs);
  return { id: r.id, created: false };
}

/**
 * The caller takes back a request the signer has not signed yet (`pending`: no nonce taken, nothing
 * signed or sent), in the caller's own transaction: it fails with `error_code` WITHDRAWN (nonce
 * NULL: evidence enough to release what the caller holds for it), audited in
 * custody.tx_request_events with who and why. The caller decides (a policy the signer does not
 * know, e.g. the customer's withdrawals were blocked by a reorg); the signer only refuses to sign.
 * The guarded UPDATE holds the row to the caller's commit: the broadcaster's intake, storing its
 * signature of the same request, then finds it no longer pending and stores none of its batch (the
 * signatures are thrown away unsent, no nonce taken). `withdrawn: false` with the status the
 * request has: signed already (or further), it can no longer be stopped here.
 */
export async function withdrawTxRequest(
  client: PoolClient,
  args: { requestId: string; by: string; reason: string },
): Promise<{ withdrawn: boolean; status: TxRequestStatus | undefined }> {
  const upd = await client.query(
    `UPDATE custody.tx_requests
        SET status = 'failed', error_code = 'WITHDRAWN', error_message = left($2, 500),
            outcome_seq = outcome_seq + 1, updated_at = now()
      WHERE id = $1 AND status = 'pending' AND nonce IS NULL`,
    [args.requestId, args.reason],
  );
  if (upd.rowCount === 1) {
    await client.query(
      `INSERT INTO custody.tx_request_events (request_id, from_status, to_status, event, actor, reason)
       VALUES ($1, 'pending', 'failed', 'withdrawn', $2, $3)`,
      [args.requestId, args.by, args.reason],
    );
    return { withdrawn: true, status: "failed" };
  }
  const { rows } = await client.query<{ status: TxRequestStatus }>(
    "SELECT status FROM custody.tx_requests WHERE id = $1",
    [args.requestId],
  );
  return { withdrawn: false, status: rows[0]?.status };
}

export type TxRequestRow = {
  id: string;
  chainId: number;
  from: string;
  to: string;
  value: bigint;
  kind: string;
  refId: string;
  status: TxRequestStatus;
  nonce: bigint | null;
  txHash: string | null;
  blockNumber: bigint | null;
  receiptSuccess: boolean | null;
  gasUsed: bigint | null;
  effectiveGasPrice: bigint | null;
  fee: bigint | null;
  errorCode: string | null;
  errorMessage: string | null;
};

const SELECT_ONE = `
  SELECT id, chain_id, from_address, to_address, value, kind, ref_id, status, nonce,
         tx_hash, block_number, receipt_success, gas_used, effective_gas_price,
         fee, error_code, error_message
  FROM custody.tx_requests WHERE id = $1`;

type RequestRow = {
  id: string;
  /** chain_id, nonce and block_number are int8: pg gives them as strings. */
  chain_id: string;
  from_address: string;
  to_address: string;
  value: bigint;
  kind: string;
  ref_id: string;
  status: TxRequestStatus;
  nonce: string | null;
  tx_hash: string | null;
  block_number: string | null;
  receipt_success: boolean | null;
  gas_used: bigint | null;
  effective_gas_price: bigint | null;
  fee: bigint | null;
  error_code: string | null;
  error_message: string | null;
};

/** An int8 column as a bigint (int8, unlike NUMERIC, arrives as text). */
const int8 = (v: string | null): bigint | null => (v === null ? null : BigInt(v));

/** Read a request's state (callers use it when the tx-outcomes doorbell rings). */
export async function getTxRequest(
  client: Pick<PoolClient, "query">,
  id: string,
): Promise<TxRequestRow | undefined> {
  const { rows } = await client.query<RequestRow>(SELECT_ONE, [id]);
  const r = rows[0];
  if (!r) return undefined;
  return {
    id: r.id,
    chainId: Number(r.chain_id),
    from: r.from_address,
    to: r.to_address,
    value: r.value,
    kind: r.kind,
    refId: r.ref_id,
    status: r.status,
    nonce: int8(r.nonce),
    txHash: r.tx_hash,
    blockNumber: int8(r.block_number),
    receiptSuccess: r.receipt_success,
    gasUsed: r.gas_used,
    effectiveGasPrice: r.effective_gas_price,
    fee: r.fee,
    errorCode: r.error_code,
    errorMessage: r.error_message,
  };
}

/**
 * The nonce after the highest one stored for (chain, wallet): every nonce below it was taken by a
 * request of ours (signed, whether or not it was sent). `from` lowercase, as stored.
 */
export async function storedNextNonce(
  db: Pick<Lease, "query">,
  chainId: number,
  from: string,
): Promise<bigint> {
  const { rows } = await db.query<{ max: string | null }>(
    `SELECT max(nonce)::text AS max FROM custody.tx_requests
      WHERE chain_id = $1 AND from_address = $2 AND nonce IS NOT NULL`,
    [chainId, from],
  );
  // nonce is int8 (max() of it too), which pg gives as text: not a NUMERIC.
  const max = rows[0]!.max;
  return max === null ? 0n : BigInt(max) + 1n;
}

/**
 * The requests a transaction hash is an attempt of (a send or a cancel, mined or not, in any
 * state): ledger/treasury's `SignerTransactions`, injected by the composition root (the ledger sits
 * below the signer and never names custody.*). A transaction we signed belongs to its request's
 * flow (withdrawal, sweep, cold move), which books it, whether or not it has yet. `txHash` lowercase.
 */
export async function requestsOfTransaction(
  client: Pick<PoolClient, "query">,
  args: { chainId: number; txHash: string },
): Promise<{ requestId: string; kind: string; refId: string; purpose: string }[]> {
  const { rows } = await client.query<{
    id: string;
    kind: string;
    ref_id: string;
    purpose: string;
  }>(
    `SELECT r.id, r.kind, r.ref_id, a.purpose FROM custody.tx_attempts a
       JOIN custody.tx_requests r ON r.id = a.request_id
      WHERE a.chain_id = $1 AND a.tx_hash = $2
      ORDER BY a.id`,
    [args.chainId, args.txHash],
  );
  return rows.map((r) => ({ requestId: r.id, kind: r.kind, refId: r.ref_id, purpose: r.purpose }));
}

/** The signer's implementation of ledger/treasury's `SignerTransactions`. */
export const signerTransactions = { requestsOfTransaction };
