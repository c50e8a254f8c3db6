/**
 * Treasury bookings (DESIGN "Money flows"): the operator's own moves, each booked against the
 * chain fact that made it, so reconciliation pairs them like any other movement:
 *   fund    value into a hot wallet:  debit custody:hot:<w>, credit treasury   (kind treasury, fact `tx` / `transfer:<n>`)
 *   defund  value out of a hot wallet: debit treasury, credit custody:hot:<w>  (and its gas, below)
 *   gas     gas a hot wallet paid for an operator transaction (the factory deploy, a defund):
 *           debit fees:gas, credit custody:hot:<w> (kind fee, fact `fee`)
 * Ids derive from chain id + tx hash + position, so a repeat answers `exists` and books nothing;
 * the first booking writes an audit row (who, why) in the same transaction.
 * When the indexer has the fact, the amount comes from it (a given amount must agree); when it does
 * not yet, the amount must be given, and reconciliation checks it once the fact is indexed. A tx
 * the indexer has without that position, or only as orphaned by a reorg, is refused.
 */

import { appendAudit } from "../foundation/audit.js";
import type { Common } from "../foundation/common.js";
import { type Pool, type PoolClient, withTransaction } from "../foundation/db.js";
import { loadCustodyOf } from "../indexers/index.js";
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

/** The positions the indexer gives a transfer's value (extractFacts.ts); `fee` is the gas. */
const VALUE_POSITION = /^(tx|transfer:[0-9]+|trace:[0-9]+(\.[0-9]+)*)$/;

function describeFacts(facts: Map<string, Fact>): string {
  return [...facts]
    .map(([position, f]) => `${position} (${f.asset} ${f.amount} from ${f.from} to ${f.to})`)
    .join(", ");
}

export async function bookTreasuryMove(
  { common, pool, ledger }: { common: Common; pool: Pool; ledger: Ledger },
  args: TreasuryMoveArgs,
  options: { client?: PoolClient } = {},
): Promise<TreasuryBooking> {
  const txHash = args.txHash.toLowerCase();
  const wallet = args.wallet.toLowerCase();
  const token = (args.token ?? NATIVE).toLowerCase();
  const what = `treasury ${args.move} ${txHash}`;
  if (!/^0x[0-9a-f]{64}$/.test(txHash))
    throw new TreasuryMoveError(what, "tx hash must be 0x + 64 hex");
  if (!/^0x[0-9a-f]{40}$/.test(wallet))
    throw new TreasuryMoveError(what, "wallet must be an address");
  if (!/^0x[0-9a-f]{40}$/.test(token))
    throw new TreasuryMoveError(what, "token must be an address");
  const by = args.by.trim();
  const reason = args.reason.trim();
  if (by === "" || reason === "")
    throw new TreasuryMoveError(what, "who (by) and why (reason) are required");
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
    const custody = await loadCustodyOf(client, args.chainId, [wallet]);
    if (custody.get(wallet) !== "hot")
      throw new TreasuryMoveError(
        what,
        `${wallet} is not a hot wallet of chain ${args.chainId} (deploy the factory from it, or register it, first)`,
      );
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
