/**
 * Treasury bookings (DESIGN "Money flows"): the operator's own moves, each booked against the
 * chain fact that made it, so reconciliation pairs them like any other movement:
 *   fund    value into a hot wallet:  debit custody:hot:<w>, credit treasury   (kind treasury, fact `tx` / `transfer:<n>`)
 *   defund  value out of a hot wallet: debit treasury, credit custody:hot:<w>  (and its gas, below)
 *   gas     gas a hot wallet paid for an operator transaction (the factory deploy, a defund, a
 *           nonce fill: `tx-requests fill-nonce`):
 *           debit fees:gas, credit custody:hot:<w> (kind fee, fact `fee`)
 * Ids derive from chain id + tx hash + position, so a repeat answers `exists` and books nothing;
 * the first booking writes an audit row (who, why) in the same transaction.
 * When the indexer has the fact, the amount comes from it (a given amount must agree); when it does
 * not yet, the amount must be given, and reconciliation checks it once the fact is indexed. A tx
 * the indexer has without that position, or only as orphaned by a reorg, is refused; so is a
 * transaction our signer sent (any attempt of a tx request, posted by its flow or not yet): its
 * withdrawal, sweep or cold move books it. A booking reads the facts holding off the indexer's
 * writes of them (`holdFactWrites`, below), so a batch storing the transaction is read, not missed.
 * `unbookTreasuryMove` (`custody-node treasury unbook`) reverses a booking whose transaction a
 * reorg took off the chain for good: every fact of it orphaned and the orphaned height final
 * (chain.facts and the published finalized block: never a node's silence). Reversals are
 * compensations with ids derived from the booking's (`…:unbook`), audited like the booking; the
 * check and the reversal hold off the indexer's writes of the chain's facts (`holdFactWrites`),
 * so a transaction being stored as mined again is read, never missed.
 */

import { appendAudit } from "../foundation/audit.js";
import type { Common } from "../foundation/common.js";
import { type Pool, type PoolClient, withTransaction } from "../foundation/db.js";
import {
  type FinalizedBlock,
  holdFactWrites,
  loadCustodyOf,
  readFinalized,
} from "../indexers/index.js";
import type { Ledger } from "./createLedger.js";
import { TransferFailedError, TreasuryMoveError } from "./errors.js";
import { gasBooking } from "./gasBookings.js";
import { assetIdOf, transferId } from "./transferId.js";
import type { NewTransfer, TransferResult } from "./types.js";

export const TREASURY_MOVES = ["fund", "defund", "gas"] as const;
export type TreasuryMove = (typeof TREASURY_MOVES)[number];

const NATIVE = "0x0000000000000000000000000000000000000000";

export type TreasuryMoveArgs = {
  move: TreasuryMove;
  chainId: number;
  txHash: string;
  /** The hot wallet funded, defunded, or that paid the gas. */
  wallet: string;
  /** ERC-20 token moved (fund/defund); default native. */
  token?: string;
  /** Base units; default: the indexed fact's amount. */
  amount?: bigint;
  /** Defund only: the gas the wallet paid for the defund transaction (default: its indexed fee fact). */
  fee?: bigint;
  /** The fact's position (default `tx` for native, `transfer:0` for a token; `fee` for gas). */
  position?: string;
  by: string;
  reason: string;
};

export type TreasuryBooking = {
  move: TreasuryMove;
  chainId: number;
  txHash: string;
  transfers: {
    id: string;
    kind: "treasury" | "fee";
    amount: bigint;
    status: "created" | "exists";
  }[];
  /** Whether the chain facts were indexed when booked (false: amounts as given, to be reconciled). */
  factsIndexed: boolean;
};

/** The deterministic transfer id of a treasury booking. */
export function treasuryTransferId(
  part: "fund" | "defund" | "gas",
  chainId: number,
  txHash: string,
  position: string,
): string {
  return transferId(`treasury:${part}:${chainId}:${txHash.toLowerCase()}:${position}`);
}

/** The reversal of a treasury booking (`treasury unbook`): the booking's name with `:unbook`. */
export function treasuryUnbookTransferId(
  part: "fund" | "defund" | "gas",
  chainId: number,
  txHash: string,
  position: string,
): string {
  return transferId(`treasury:${part}:${chainId}:${txHash.toLowerCase()}:${position}:unbook`);
}

/**
 * What the treasury reads of the signer (above the ledger: given by the caller, as reconciliation
 * is given its SweepReader): the tx requests a transaction hash is an attempt of. signer/requests'
 * `signerTransactions` in production and in tests.
 */
export type SignerTransactions = {
  requestsOfTransaction(
    client: PoolClient,
    args: { chainId: number; txHash: string },
  ): Promise<{ requestId: string; kind: string; refId: string }[]>;
};

/**
 * For `bookDeployGas`: a contract deploy from a hot wallet is signed and stored outside tx
 * requests (custody.hot_wallet_deploys), so no request can claim it.
 */
export const DEPLOYS_ARE_NOT_REQUESTS: SignerTransactions = {
  requestsOfTransaction: async () => [],
};

export type TreasuryDeps = {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  signerTransactions: SignerTransactions;
};

type Fact = { from: string; to: string; asset: string; amount: bigint };

/** What the indexer has of a transaction: its canonical facts by position, and whether a reorg orphaned any. */
type TxFacts = { canonical: Map<string, Fact>; orphaned: boolean };

async function loadTxFacts(client: PoolClient, chainId: number, txHash: string): Promise<TxFacts> {
  const r = await client.query<{
    position: string;
    from_address: string;
    to_address: string;
    asset: string;
    amount: bigint;
    status: string;
  }>(
    `SELECT position, from_address, to_address, asset, amount, status FROM chain.facts
      WHERE chain_id = $1 AND tx_hash = $2
      ORDER BY id DESC`,
    [chainId, txHash],
  );
  const canonical = new Map<string, Fact>();
  let orphaned = false;
  for (const row of r.rows) {
    if (row.status === "orphaned") orphaned = true;
    else if (!canonical.has(row.position))
      canonical.set(row.position, {
        from: row.from_address,
        to: row.to_address,
        asset: row.asset,
        amount: row.amount,
      });
  }
  return { canonical, orphaned };
}

/**
 * Signer request kinds no flow books, sent by an operator's decision: `nonce_fill`
 * (signer/operator.ts, `tx-requests fill-nonce`). Their gas is booked with `treasury gas`.
 */
const OPERATOR_REQUEST_KINDS: ReadonlySet<string> = new Set(["nonce_fill"]);

/** The positions the indexer gives a transfer's value (extractFacts.ts); `fee` is the gas. */
const VALUE_POSITION = /^(tx|transfer:[0-9]+|trace:[0-9]+(\.[0-9]+)*)$/;

function describeFacts(facts: Map<string, Fact>): string {
  return [...facts]
    .map(([position, f]) => `${position} (${f.asset} ${f.amount} from ${f.from} to ${f.to})`)
    .join(", ");
}

/**
 * What every treasury command checks first: the tx hash (lowercased), who and why (trimmed), and
 * the name its refusals carry (`treasury <command> <tx>`).
 */
function operatorArgs(
  command: TreasuryMove | "unbook",
  args: { txHash: string; by: string; reason: string },
): { txHash: string; what: string; by: string; reason: string } {
  const txHash = args.txHash.toLowerCase();
  const what = `treasury ${command} ${txHash}`;
  if (!/^0x[0-9a-f]{64}$/.test(txHash))
    throw new TreasuryMoveError(what, "tx hash must be 0x + 64 hex");
  const by = args.by.trim();
  const reason = args.reason.trim();
  if (by === "" || reason === "")
    throw new TreasuryMoveError(what, "who (by) and why (reason) are required");
  return { txHash, what, by, reason };
}

export async function bookTreasuryMove(
  { common, pool, ledger, signerTransactions }: TreasuryDeps,
  args: TreasuryMoveArgs,
  options: { client?: PoolClient } = {},
): Promise<TreasuryBooking> {
  const { txHash, what, by, reason } = operatorArgs(args.move, args);
  const wallet = args.wallet.toLowerCase();
  const token = (args.token ?? NATIVE).toLowerCase();
  if (!/^0x[0-9a-f]{40}$/.test(wallet))
    throw new TreasuryMoveError(what, "wallet must be an address");
  if (!/^0x[0-9a-f]{40}$/.test(token))
    throw new TreasuryMoveError(what, "token must be an address");
  if (args.move === "gas" && token !== NATIVE)
    throw new TreasuryMoveError(what, "gas is paid in the native asset");
  for (const [name, v] of [
    ["amount", args.amount],
    ["fee", args.fee],
  ] as const)
    if (v !== undefined && v <= 0n) throw new TreasuryMoveError(what, `${name} must be positive`);
  // A position the indexer never writes finds no fact, so it read as "not indexed yet" and booked
  // the given amount under an id of its own: a second booking of a booked move.
  if (args.move === "gas" && args.position !== undefined && args.position !== "fee")
    throw new TreasuryMoveError(what, "position of a gas move is always fee (the gas fact)");
  if (args.move !== "gas" && args.position !== undefined && !VALUE_POSITION.test(args.position))
    throw new TreasuryMoveError(
      what,
      `position must be tx, transfer:<n> or trace:<path>, not "${args.position}"`,
    );

  const run = async (client: PoolClient): Promise<TreasuryBooking> => {
    // What is booked rests on the facts read below: none read as "not indexed yet" books the given
    // amounts unchecked, and the indexer's batch storing the transaction meanwhile (uncommitted)
    // would not be read (a reverted defund's value, gas other than the fee fact, booked). Held off
    // until this transaction ends (or waited for: its facts are then read and checked), before any
    // other lock, as the indexer takes it.
    await holdFactWrites(client, args.chainId);
    const custody = await loadCustodyOf(client, args.chainId, [wallet]);
    if (custody.get(wallet) !== "hot")
      throw new TreasuryMoveError(
        what,
        `${wallet} is not a hot wallet of chain ${args.chainId} (deploy the factory from it, or register it, first)`,
      );
    // Our signer's transaction belongs to its request's flow, which books its value and gas once
    // it is final enough: booked here first (mined, not yet posted), the flow's post booked it again.
    const requests = await signerTransactions.requestsOfTransaction(client, {
      chainId: args.chainId,
      txHash,
    });
    // An operator's nonce fill (a 0-value transfer of the wallet to itself) has no flow: its gas
    // is the operator's, booked here; nothing else of it is.
    const ownedByFlow = requests.filter(
      (r) => !(args.move === "gas" && OPERATOR_REQUEST_KINDS.has(r.kind)),
    );
    if (ownedByFlow.length > 0) {
      const r = ownedByFlow[0]!;
      throw new TreasuryMoveError(
        what,
        `${txHash} was sent by the custody's signer for tx request ${r.requestId} (${r.kind} ${r.refId}): its flow books it, posted or not yet; not an operator move`,
      );
    }
    const hotAccount = `custody:hot:${wallet}`;
    const transfers: NewTransfer[] = [];
    let factsIndexed = true;
    const txFacts = await loadTxFacts(client, args.chainId, txHash);
    // A reorg took it off our chain (a different block at its height, not a node's silence): it
    // may never mine again, and a booking from the given amount would stand for value not there.
    if (txFacts.canonical.size === 0 && txFacts.orphaned)
      throw new TreasuryMoveError(
        what,
        `a reorg took ${txHash} off the chain and the indexer has not seen it mined again: book it once it is`,
      );

    /** The amount of `position`'s fact, checked against what the caller says. */
    const amountOf = async (
      position: string,
      given: bigint | undefined,
      expect: { from?: string; to?: string; asset: string },
      label: string,
    ): Promise<bigint> => {
      const fact = txFacts.canonical.get(position);
      if (!fact) {
        // The indexer stores a transaction's facts together, so one it has without this position
        // did not move value there: the tx hash, --token or --position is wrong (a token funding
        // booked as native, a reverted defund's value). Internal transfers are the exception: a
        // chain without traces never has them.
        if (txFacts.canonical.size > 0 && !position.startsWith("trace:"))
          throw new TreasuryMoveError(
            what,
            `the indexed transaction ${txHash} has no fact at ${position}; it has ${describeFacts(txFacts.canonical)}: check --token and --position`,
          );
        factsIndexed = false;
        if (given === undefined)
          throw new TreasuryMoveError(
            what,
            `the ${label} fact ${txHash}:${position} is not indexed yet: give the amount, or wait for the indexer`,
          );
        return given;
      }
      const wrong =
        (expect.from !== undefined && fact.from !== expect.from) ||
        (expect.to !== undefined && fact.to !== expect.to) ||
        fact.asset !== expect.asset;
      if (wrong)
        throw new TreasuryMoveError(
          what,
          `the chain fact ${txHash}:${position} moved ${fact.asset} from ${fact.from} to ${fact.to}, not a ${label} of ${expect.asset} ${expect.from ? `from ${expect.from}` : `to ${expect.to}`}`,
        );
      if (given !== undefined && given !== fact.amount)
        throw new TreasuryMoveError(
          what,
          `the chain fact ${txHash}:${position} says ${fact.amount}, not ${given}`,
        );
      return fact.amount;
    };

    const valuePosition = args.position ?? (token === NATIVE ? "tx" : "transfer:0");
    const asset = assetIdOf(args.chainId, token);
    const chainRef = (position: string) => ({ chainId: args.chainId, txHash, position });
    const gasTransfer = (amount: bigint): NewTransfer =>
      gasBooking({
        id: treasuryTransferId("gas", args.chainId, txHash, "fee"),
        chainId: args.chainId,
        hotWallet: wallet,
        txHash,
        amount,
        memo: `gas of operator tx ${txHash} (${args.move}) by ${by}: ${reason}`,
      });
    if (args.move === "fund") {
      const amount = await amountOf(
        valuePosition,
        args.amount,
        { to: wallet, asset: token },
        "funding",
      );
      transfers.push({
        id: treasuryTransferId("fund", args.chainId, txHash, valuePosition),
        assetId: asset,
        debit: hotAccount,
        credit: "treasury",
        amount,
        kind: "treasury",
        chainRef: chainRef(valuePosition),
        memo: `hot wallet funded by ${by}: ${reason}`,
      });
    } else if (args.move === "defund") {
      const amount = await amountOf(
        valuePosition,
        args.amount,
        { from: wallet, asset: token },
        "defunding",
      );
      const fee = await amountOf("fee", args.fee, { from: wallet, asset: NATIVE }, "gas");
      transfers.push({
        id: treasuryTransferId("defund", args.chainId, txHash, valuePosition),
        assetId: asset,
        debit: "treasury",
        credit: hotAccount,
        amount,
        kind: "treasury",
        chainRef: chainRef(valuePosition),
        memo: `hot wallet defunded by ${by}: ${reason}`,
      });
      transfers.push(gasTransfer(fee));
    } else {
      const fee = await amountOf(
        args.position ?? "fee",
        args.amount,
        { from: wallet, asset: NATIVE },
        "gas",
      );
      transfers.push(gasTransfer(fee));
    }
    // A fact another booking claims (a withdrawal's payment or gas, a sweep) is not the operator's
    // move: a tx hash given by mistake would count that value or gas twice on the hot wallet.
    const claimed = (
      await client.query<{ id: string; kind: string; position: string }>(
        `SELECT id::text, kind, position FROM ledger.transfers
          WHERE chain_id = $1 AND tx_hash = $2 AND position = ANY($3::text[])
            AND id <> ALL($4::uuid[])
          LIMIT 1`,
        [
          args.chainId,
          txHash,
          transfers.map((t) => t.chainRef!.position),
          transfers.map((t) => t.id),
        ],
      )
    ).rows[0];
    if (claimed)
      throw new TreasuryMoveError(
        what,
        `the chain fact ${txHash}:${claimed.position} is already booked as ${claimed.kind} (transfer ${claimed.id}): not an operator move`,
      );
    // An unbooked booking keeps its id: booking it again would answer `exists` for value the
    // reversal took out, and "already booked" would be false.
    const unbooked = (
      await client.query<{ id: string; reverses_id: string }>(
        `SELECT id::text, reverses_id::text FROM ledger.transfers WHERE reverses_id = ANY($1::uuid[]) LIMIT 1`,
        [transfers.map((t) => t.id)],
      )
    ).rows[0];
    if (unbooked)
      throw new TreasuryMoveError(
        what,
        `its booking (transfer ${unbooked.reverses_id}) was reversed by treasury unbook (transfer ${unbooked.id}) after a reorg took it off the chain: a transaction mined again after that is not booked again by this command: escalate (docs/runbooks/ReconciliationBreaksOpen.md)`,
      );
    // All or nothing: a funding without its gas (or the reverse) would be half a booking.
    const linked = transfers.map((t, i) => (i < transfers.length - 1 ? { ...t, linked: true } : t));
    const results = await ledger.createTransfers(linked, { client });
    const out: TreasuryBooking["transfers"] = [];
    results.forEach((r: TransferResult, i) => {
      const t = transfers[i]!;
      if (r.status === "failed") {
        if (r.code === "LEDGER_TRANSFER_EXISTS_MISMATCH")
          throw new TreasuryMoveError(
            what,
            `it is already booked with a different ${r.field ?? "field"} (transfer ${t.id}): the first booking stands`,
          );
        throw new TransferFailedError(t.id, r.code, r.detail);
      }
      out.push({
        id: t.id,
        kind: t.kind as "treasury" | "fee",
        amount: t.amount,
        status: r.status,
      });
    });
    if (out.some((t) => t.status === "created"))
      await appendAudit(client, {
        actor: by,
        action: `treasury.${args.move}`,
        entityType: "treasury",
        entityId: `${args.chainId}:${txHash}`,
        details: {
          reason,
          wallet,
          asset,
          facts_indexed: factsIndexed,
          transfers: out.map((t) => ({ id: t.id, kind: t.kind, amount: t.amount.toString() })),
        },
      });
    return { move: args.move, chainId: args.chainId, txHash, transfers: out, factsIndexed };
  };

  const booking = options.client ? await run(options.client) : await withTransaction(pool, run);
  common.logger.info({
    msg: booking.transfers.some((t) => t.status === "created")
      ? "treasury move booked"
      : "treasury move already booked",
    component: "treasury",
    move: booking.move,
    chain_id: booking.chainId,
    tx_hash: booking.txHash,
    transfers: booking.transfers.map((t) => `${t.kind}:${t.id}:${t.amount}`),
    by,
    reason,
  });
  return booking;
}

export type TreasuryUnbookArgs = { chainId: number; txHash: string; by: string; reason: string };

export type TreasuryUnbooking = {
  chainId: number;
  txHash: string;
  /** The highest block the transaction's facts were orphaned from, and the finalized height. */
  orphanedBlock: bigint;
  finalized: bigint;
  transfers: {
    id: string;
    reverses: string;
    kind: "treasury" | "fee";
    amount: bigint;
    status: "created" | "exists";
  }[];
};

const PARTS = ["fund", "defund", "gas"] as const;

/**
 * Reverse the treasury bookings of a transaction a reorg took off the chain for good (`treasury
 * unbook`): refused unless the indexer has facts of it, every one orphaned, and the published
 * finalized height is at or past the highest block they were orphaned from. A node that does not
 * return the transaction proves nothing, so no facts (or no finalized height) is a refusal too.
 * Idempotent: the reversals' ids derive from the bookings', a retry answers `exists`.
 */
export async function unbookTreasuryMove(
  { common, pool, ledger }: Omit<TreasuryDeps, "signerTransactions">,
  args: TreasuryUnbookArgs,
  options: { client?: PoolClient } = {},
): Promise<TreasuryUnbooking> {
  const { txHash, what, by, reason } = operatorArgs("unbook", args);

  const run = async (client: PoolClient): Promise<TreasuryUnbooking> => {
    // The check below reads "every fact orphaned": the indexer storing the transaction mined again
    // meanwhile (its batch not committed yet) would not be read, and the booking reversed although
    // the transaction is back. Held off until this transaction ends (or waited for: its fact is then
    // read), before any other lock, as the indexer takes it.
    await holdFactWrites(client, args.chainId);
    const booked = (
      await client.query<{
        id: string;
        kind: "treasury" | "fee";
        asset_id: string;
        amount: bigint;
        position: string;
        debit: string;
        credit: string;
      }>(
        `SELECT t.id::text, t.kind, t.asset_id, t.amount, t.position, d.name AS debit, c.name AS credit
           FROM ledger.transfers t
           JOIN ledger.accounts d ON d.id = t.debit_account_id
           JOIN ledger.accounts c ON c.id = t.credit_account_id
          WHERE t.chain_id = $1 AND t.tx_hash = $2 AND t.kind IN ('treasury', 'fee')
          ORDER BY t.seq`,
        [args.chainId, txHash],
      )
    ).rows.flatMap((t) => {
      // Only the treasury's own bookings (a withdrawal's gas is a fee on the same reference).
      const part = PARTS.find(
        (p) => treasuryTransferId(p, args.chainId, txHash, t.position) === t.id,
      );
      return part ? [{ ...t, part }] : [];
    });
    if (booked.length === 0)
      throw new TreasuryMoveError(
        what,
        `no treasury booking of ${txHash} on chain ${args.chainId}`,
      );

    const facts = (
      await client.query<{ status: string; block_number: string }>(
        `SELECT status, block_number::text FROM chain.facts WHERE chain_id = $1 AND tx_hash = $2`,
        [args.chainId, txHash],
      )
    ).rows;
    if (facts.length === 0)
      throw new TreasuryMoveError(
        what,
        `the indexer has no fact of ${txHash}: a transaction a node does not return is not known to be gone; unbook once the indexer has seen it orphaned by a reorg and its height is final`,
      );
    const standing = facts.find((f) => f.status !== "orphaned");
    if (standing)
      throw new TreasuryMoveError(
        what,
        `${txHash} is on the chain (a ${standing.status} fact at block ${standing.block_number}): its booking stands`,
      );
    const orphanedBlock = facts.reduce((m, f) => {
      const b = BigInt(f.block_number);
      return b > m ? b : m;
    }, 0n);
    const final = await readFinalized(client, args.chainId);
    if (final === null || final.number < orphanedBlock)
      throw new TreasuryMoveError(
        what,
        `a reorg took ${txHash} off the chain at block ${orphanedBlock}, but ${final === null ? "no finalized height is published yet" : `the finalized height is ${final.number}`}: it may still mine again; unbook once block ${orphanedBlock} is final without it`,
      );

    const reversals: NewTransfer[] = booked.map((t, i) => ({
      id: treasuryUnbookTransferId(t.part, args.chainId, txHash, t.position),
      reverses: t.id,
      assetId: t.asset_id,
      debit: t.credit,
      credit: t.debit,
      amount: t.amount,
      kind: "compensation",
      memo: `treasury ${t.part} ${txHash}:${t.position} unbooked by ${by} (reorged out, final without it at ${final.number}): ${reason}`,
      ...(i < booked.length - 1 ? { linked: true } : {}),
    }));
    const results = await ledger.createTransfers(reversals, { client });
    const out: TreasuryUnbooking["transfers"] = [];
    results.forEach((r: TransferResult, i) => {
      const t = reversals[i]!;
      if (r.status === "failed") throw new TransferFailedError(t.id, r.code, r.detail);
      out.push({
        id: t.id,
        reverses: booked[i]!.id,
        kind: booked[i]!.kind,
        amount: t.amount,
        status: r.status,
      });
    });
    // As a booking's row has them (GET /v1/treasury/moves lists both): the hot wallet and the
    // asset of the first reversal (the value before its gas).
    const wallet = [booked[0]!.debit, booked[0]!.credit]
      .find((n) => n.startsWith("custody:hot:"))
      ?.slice("custody:hot:".length);
    if (out.some((t) => t.status === "created"))
      await appendAudit(client, {
        actor: by,
        action: "treasury.unbook",
        entityType: "treasury",
        entityId: `${args.chainId}:${txHash}`,
        details: {
          reason,
          ...(wallet !== undefined ? { wallet } : {}),
          asset: booked[0]!.asset_id,
          orphaned_block: orphanedBlock.toString(),
          finalized: final.number.toString(),
          transfers: out.map((t) => ({
            id: t.id,
            reverses: t.reverses,
            kind: t.kind,
            amount: t.amount.toString(),
          })),
        },
      });
    return {
      chainId: args.chainId,
      txHash,
      orphanedBlock,
      finalized: final.number,
      transfers: out,
    };
  };

  const unbooking = options.client ? await run(options.client) : await withTransaction(pool, run);
  common.logger.warn({
    msg: unbooking.transfers.some((t) => t.status === "created")
      ? "treasury booking unbooked: its transaction is final off the chain"
      : "treasury booking already unbooked",
    component: "treasury",
    chain_id: unbooking.chainId,
    tx_hash: unbooking.txHash,
    orphaned_block: unbooking.orphanedBlock.toString(),
    finalized: unbooking.finalized.toString(),
    transfers: unbooking.transfers.map((t) => `${t.kind}:${t.id}:${t.amount}`),
    by,
    reason,
  });
  return unbooking;
}

/**
 * What `treasury fund` bookings not reversed by `treasury unbook` brought into `wallet` in `asset`
 * whose fact is not final: not indexed yet (booked from the operator's amount), or not in a
 * canonical block at or below the chain's published finalized height. A reorg may still drop such
 * a funding for good, so whatever spends it (a cold move: its bytes keep their amount) must wait:
 * a node's silence or an unindexed fact is never read as final. Few rows per wallet (migration
 * 0017), read each sweep tick.
 */
export async function unfinalFundings(
  db: Pick<Pool, "query">,
  args: {
    chainId: number;
    wallet: string;
    asset: string;
    /**
     * The chain's published finalized block as the caller read it (`readFinalized`) for a pass
     * over many (wallet, asset) pairs; omitted: read here. It only rises, so one read at the start
     * of a pass counts at least as much as unfinal as a fresh one would.
     */
    finalized?: FinalizedBlock | null;
  },
): Promise<bigint> {
  const final =
    args.finalized !== undefined ? args.finalized : await readFinalized(db, args.chainId);
  const { rows } = await db.query<{ funded: string }>(
    `SELECT COALESCE(sum(t.amount), 0)::text AS funded
       FROM ledger.accounts a JOIN ledger.transfers t ON t.debit_account_id = a.id
      WHERE a.asset_id = $2 AND a.name = $3 AND t.kind = 'treasury' AND t.chain_id = $1
        AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.reverses_id = t.id)
        AND NOT EXISTS (SELECT 1 FROM chain.facts f
                         WHERE f.chain_id = t.chain_id AND f.tx_hash = t.tx_hash
                           AND f.position = t.position AND f.status <> 'orphaned'
                           AND f.block_number <= $4)`,
    [
      args.chainId,
      assetIdOf(args.chainId, args.asset.toLowerCase()),
      `custody:hot:${args.wallet.toLowerCase()}`,
      final?.number.toString() ?? null,
    ],
  );
  return BigInt(rows[0]!.funded);
}
