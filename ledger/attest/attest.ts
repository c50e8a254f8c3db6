/**
 * Attestation of reserves and liabilities (DESIGN "Proof for dApps"). At the block of the newest
 * completed reconciliation run of a chain at or below the block the indexer published final (the
 * chain's finality rule, deeper than the confirmation rule runs use) and still canonical there,
 * when that run has no open break, no solvency shortfall
 * or unexplained balance difference (acknowledged or not), and the schedule says one is due, per
 * asset (native and listed tokens):
 *   reserves     on-chain balances of every custody address (hot, cold, deposit) at the block
 *   liabilities  the customers' balances as that run counted them (posted, less pending reorg
 *                holds, without what the ledger booked after the run or deferred past its block:
 *                recon's customerLiabilitiesAtRun), as leaves of a Merkle-sum tree (merkleSum.ts)
 *                with a salt per customer; their sum must equal the run's recorded liabilities
 *   addresses    the Merkle root of the custody address list the reserves were read from
 *   reportHash   keccak256 of the attestation report (reportOf): run, block, per-address balances
 * stored with its leaves and handed to the signer as a normal request (`attest:<chain>:<asset>:<block>`)
 * in one transaction, through the `AttestationSender` its caller injects (sender.ts). `settle`
 * follows the requests: once mined and confirmed (or failed at a final block: reverted, or its nonce
 * cancelled by the signer), the gas the hot wallet paid is booked (debit
 * fees:gas, credit custody:hot, fact `fee`) so reconciliation pairs it. A confirmed attestation is
 * followed until the signer reports it finalized: if a reorg takes its transaction out (the signer
 * counts it and sends the same bytes again), its gas booking is reversed and it is `requested`
 * again, neither served to customers nor counted as attested, until it mines again and its gas is
 * booked anew (`fee:<chain>:<tx>:g<n>`, n the signer's reorg count) at what that inclusion cost.
 */
import { randomBytes } from "node:crypto";
import {
  type Address,
  encodeFunctionData,
  getAddress,
  type Hex,
  keccak256,
  stringToHex,
  zeroAddress,
} from "viem";
import type { ChainConfig, EvmAdapter } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { getContract, listCustody, readFinalized } from "../../indexers/index.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { failureIsEvidenced, followAction } from "../failureEvidence.js";
import { gasTransfer, gasUnbooking } from "../gasBookings.js";
import { customerLiabilitiesAtRun } from "../recon/customerLiabilities.js";
import { unlessAborted } from "../recon/reconcile.js";
import { listRuns, readRun, readRunJournalPosition, type StoredRun } from "../recon/store.js";
import type { BreakType } from "../recon/types.js";
import { assetIdOf } from "../transferId.js";
import { RESERVES_ATTESTOR, reservesAttestor } from "./deploy.js";
import { AttestLockLostError } from "./errors.js";
import { addressesRoot, buildMerkleSumTree } from "./merkleSum.js";
import type { AttestationSender } from "./sender.js";

export const ATTESTATION_KIND = "attestation";

export type AttestationSchedule = {
  /** Attest when the newest clean run's block is at least this many blocks after the last attested one. */
  everyBlocks: number;
};

export type CustodyBalance = { address: string; kind: string; balance: bigint };

export type AttestationFigures = {
  chainId: number;
  assetId: string;
  token: Address;
  block: number;
  runId: number;
  reserves: bigint;
  liabilities: bigint;
  liabilitiesRoot: Hex;
  addressesRoot: Hex;
  reportHash: Hex;
  leafCount: number;
  addresses: CustodyBalance[];
  /** The customers' balances the tree was built from (stored as the attestation's leaves). */
  leaves: { customerId: string; balance: bigint }[];
};

export type AttestationRecord = AttestationFigures & {
  id: number;
  requestId: string;
  contract: Address;
  status: "requested" | "confirmed" | "failed";
  txHash: Hex | null;
};

export type AttestTickResult =
  | { attested: AttestationRecord[]; runId: number; block: number }
  | {
      attested: [];
      skipped:
        | "no_contract"
        | "no_run"
        | "not_final"
        | "in_flight"
        | "not_due"
        | "open_breaks"
        | "balance_breaks"
        | "liabilities_differ"
        | "reserves_differ";
      runId?: number;
      block?: number;
      detail: string;
    };

export type Attestor = {
  /** Settle requested attestations, then attest the newest completed run's block if due and clean. */
  tick: (
    chain: ChainConfig,
    schedule: AttestationSchedule,
    options?: AttestTickOptions,
  ) => Promise<AttestTickResult>;
  /** Follow requested attestations; books the gas of mined ones. Returns how many settled. */
  settle: (chain: ChainConfig) => Promise<number>;
  /** The figures for one asset at one run's block (no write). */
  figures: (chain: ChainConfig, runId: number, token: Address) => Promise<AttestationFigures>;
};

export type AttestTickOptions = {
  /**
   * Aborts when the chain's lock the tick runs under is lost (the reconciler role's loop): the
   * tick stops with ATTEST_LOCK_LOST before it stores or requests an attestation, or rolls that
   * back, since another reconciler may be attesting the chain by then. A loss not heard of before
   * the commit costs nothing either: the committing transaction checks again, under the chain's
   * attestation write lock, that nothing is in flight and the block is due.
   */
  signal?: AbortSignal;
};

/** The report whose keccak256 is attested as reportHash: everything the figures came from. */
export function reportOf(
  f: Omit<AttestationFigures, "reportHash" | "leaves"> & { blockHash: string | null },
) {
  return {
    version: 1,
    chainId: f.chainId,
    asset: f.token,
    block: f.block,
    blockHash: f.blockHash,
    runId: f.runId,
    reserves: f.reserves.toString(),
    liabilities: f.liabilities.toString(),
    liabilitiesRoot: f.liabilitiesRoot,
    addressesRoot: f.addressesRoot,
    leafCount: f.leafCount,
    addresses: f.addresses.map((a) => ({ ...a, balance: a.balance.toString() })),
  };
}

export function requestIdOf(chainId: number, token: string, block: number): string {
  return `attest:${chainId}:${token.toLowerCase()}:${block}`;
}

/** Per chain, the reads of the reserves (the same object on every call for a chain). */
export type AttestChainReaders = (
  chain: ChainConfig,
) => Pick<EvmAdapter, "rpc" | "getTokenBalances">;

const READ_CHUNK = 500;

/**
 * Breaks that say the run's balances themselves are wrong or short: an attestation of that block
 * would publish them. An operator's acknowledgement says someone looked, not that the figures hold.
 */
const BLOCKING_BREAKS: ReadonlySet<BreakType> = new Set<BreakType>([
  "solvency_shortfall",
  "unexplained_balance_difference",
]);

/** The user liabilities of the asset the run's solvency check recorded (0 when it had none). */
export function recordedLiabilities(run: Pick<StoredRun, "balances">, assetId: string): bigint {
  const check = run.balances.find((c) => c.scope === "solvency" && c.assetId === assetId);
  return check ? BigInt(check.ledger) : 0n;
}

/**
 * The custody assets of the asset the run's solvency check recorded (0 when it had none): what it
 * read at its block, and for deposit addresses an incremental run did not read, their last-read
 * balances.
 */
export function recordedReserves(run: Pick<StoredRun, "balances">, assetId: string): bigint {
  const check = run.balances.find((c) => c.scope === "solvency" && c.assetId === assetId);
  return check ? BigInt(check.chain) : 0n;
}

/**
 * Whether the run checked the asset: its recorded tokens (`inputs.tokens`, what it read), or for a
 * run stored without them, a solvency check of the asset.
 */
export function runChecked(
  run: Pick<StoredRun, "balances" | "inputs">,
  assetId: string,
  token: string,
): boolean {
  const tokens = run.inputs.tokens;
  if (Array.isArray(tokens))
    return tokens.some((t) => String(t).toLowerCase() === token.toLowerCase());
  return run.balances.some((c) => c.scope === "solvency" && c.assetId === assetId);
}

/**
 * The newest block of the chain attested or being attested (a failed one does not count: a later
 * block is attested instead); null before the first. Asked on every attestor pass.
 */
export async function lastAttestedBlock(
  db: Pick<Pool, "query">,
  chainId: number,
): Promise<number | null> {
  const { rows } = await db.query<{ block: string | null }>(
    "SELECT max(block_number)::text AS block FROM attest.attestations WHERE chain_id = $1 AND status <> 'failed'",
    [chainId],
  );
  const block = rows[0]?.block;
  return block === null || block === undefined ? null : Number(block);
}

/** An attestation of the chain is requested and not settled yet (its transaction still out). */
async function attestationInFlight(db: Pick<Pool, "query">, chainId: number): Promise<boolean> {
  const { rows } = await db.query(
    "SELECT 1 FROM attest.attestations WHERE chain_id = $1 AND status = 'requested' LIMIT 1",
    [chainId],
  );
  return rows.length > 0;
}

/**
 * Whether the asset's newest attestation (a failed one does not count: it published nothing) has
 * reserves or liabilities above zero; false before the first. Asked only of an asset at zero: the
 * last entries of its range in the unique key (chain, asset, block).
 */
async function lastAttestedHeld(pool: Pool, chainId: number, assetId: string): Promise<boolean> {
  const { rows } = await pool.query<{ held: boolean }>(
    `SELECT reserves > 0 OR liabilities > 0 AS held FROM attest.attestations
      WHERE chain_id = $1 AND asset_id = $2 AND status <> 'failed'
      ORDER BY block_number DESC LIMIT 1`,
    [chainId, assetId],
  );
  return rows[0]?.held ?? false;
}

export function createAttestor({
  common,
  pool,
  sender,
  chains,
}: {
  common: Common;
  pool: Pool;
  /** The signer's request intake and outcomes (the composition root passes the signer's). */
  sender: AttestationSender;
  /**
   * The reserves' on-chain reads per chain (chains/' `adapterPerChain(common)` in production), given
   * by the caller: attestation builds no RPC client (DESIGN: the ledger does not call RPC on its own).
   */
  chains: AttestChainReaders;
}): Attestor {
  const log = common.logger.child({ component: "attest" });
  const adapter = chains;
  /**
   * Per chain, the run its last refusal was about because what was read at the run's block differs
   * from what the run recorded (liabilities_differ, reserves_differ), with that answer. Read again
   * at the same block (by its hash) it differs again: the ticks after it give the same answer
   * without reading every custody address's balance and every customer's liability once more
   * (minutes, and a provider's rate limit, at scale). A newer run is read afresh; a restart reads once.
   */
  const refusedRuns = new Map<number, AttestTickResult & { runId: number }>();

  /**
   * What the custody addresses hold of `token` at the run's block, named by its hash where the run
   * stored it (EIP-1898, `requireCanonical`): by number, an endpoint on another fork at that height
   * answers for its own block, and those figures would be published. A node without our block
   * refuses; the next endpoint is asked.
   */
  async function readReserves(
    chain: ChainConfig,
    custody: { address: string; kind: string }[],
    token: Address,
    run: { block: number; blockHash: string | null },
  ): Promise<CustodyBalance[]> {
    const blockNumber = BigInt(run.block);
    const blockHash = run.blockHash === null ? undefined : (run.blockHash as Hex);
    const out: CustodyBalance[] = [];
    for (let i = 0; i < custody.length; i += READ_CHUNK) {
      const part = custody.slice(i, i + READ_CHUNK);
      let balances: bigint[];
      if (token === zeroAddress) {
        const tag = blockHash
          ? { blockHash, requireCanonical: true }
          : `0x${run.block.toString(16)}`;
        const raw = await adapter(chain).rpc.batch<string>(
          part.map((c) => ({ method: "eth_getBalance", params: [c.address, tag] })),
          { atLeast: blockNumber, refusalMovesOn: true },
        );
        balances = raw.map((b) => BigInt(b));
      } else {
        balances = await adapter(chain).getTokenBalances({
          token,
          holders: part.map((c) => c.address as Address),
          blockNumber,
          ...(blockHash ? { blockHash } : {}),
        });
      }
      part.forEach((c, j) => {
        out.push({ address: c.address, kind: c.kind, balance: balances[j]! });
      });
    }
    return out;
  }

  async function figures(
    chain: ChainConfig,
    runId: number,
    token: Address,
  ): Promise<AttestationFigures> {
    const run = await readRun(pool, runId);
    if (run.chainId !== chain.chainId)
      throw new Error(`run ${runId} is not of chain ${chain.chainId}`);
    const assetId = assetIdOf(chain.chainId, token);
    // The addresses the run could count (registered by its start): one registered later with
    // value it held at the block (a wallet brought under custody) was not the custody's then.
    const custody = await listCustody(pool, chain.chainId, new Date(run.startedAt));
    const addresses = await readReserves(chain, custody, token, run);
    // The liabilities the run counted at its block, not the ledger as it stands now: postings after
    // the block would pair reserves at the block with liabilities of another moment.
    const balances = await withTransaction(
      pool,
      async (c) =>
        customerLiabilitiesAtRun(c, { run: await readRunJournalPosition(c, runId), assetId }),
      { isolation: "repeatable read", readOnly: true },
    );
    const salts = await ensureSalts(pool, assetId, [...balances.keys()]);
    for (const [customerId, balance] of balances)
      if (balance < 0n)
        throw new Error(
          `customer ${customerId} has a negative ${assetId} liability (${balance}): not attested`,
        );
    const tree = buildMerkleSumTree(
      [...balances].map(([customerId, balance]) => ({
        customerId,
        balance,
        salt: salts.get(customerId)!,
      })),
    );
    const base = {
      chainId: chain.chainId,
      assetId,
      token: getAddress(token),
      block: run.block,
      runId,
      reserves: addresses.reduce((s, a) => s + a.balance, 0n),
      liabilities: tree.root.sum,
      liabilitiesRoot: tree.root.hash,
      addressesRoot: addressesRoot(custody.map((c) => c.address)),
      leafCount: tree.leaves.length,
      addresses,
    };
    const reportHash = keccak256(
      stringToHex(JSON.stringify(reportOf({ ...base, blockHash: run.blockHash }))),
    );
    const leaves = tree.leaves.map((l) => ({ customerId: l.customerId, balance: l.balance }));
    return { ...base, reportHash, leaves };
  }

  /**
   * Confirmed attestations not yet final: finalized ones are marked final; one whose mined
   * transaction left the chain (the signer's reorg count grew past the booked one, or it is back in
   * no block) or that failed after all on evidence (failureIsEvidenced: a `failed` without it is a
   * signer bug, and the booking stands) has its gas booking reversed and is `requested` again, for
   * the settlement below to book when it mines again (followAction, the rule sweeps and cold moves
   * follow too).
   */
  async function follow(chain: ChainConfig, ledger: Ledger): Promise<number> {
    const rows = await pool.query<{
      id: string;
      request_id: string;
      tx_hash: string | null;
      fee: bigint | null;
      booked_generation: number;
    }>(
      `SELECT id, request_id, tx_hash, fee, booked_generation FROM attest.attestations
        WHERE chain_id = $1 AND status = 'confirmed' AND final_at IS NULL ORDER BY id`,
      [chain.chainId],
    );
    if (rows.rows.length === 0) return 0;
    const outcomes = new Map(
      (await sender.getTxOutcomes(pool, { requestIds: rows.rows.map((r) => r.request_id) })).map(
        (o) => [o.requestId, o],
      ),
    );
    let followed = 0;
    for (const row of rows.rows) {
      const o = outcomes.get(row.request_id);
      if (!o) continue;
      const action = followAction(row.booked_generation, o);
      if (o.status === "failed" && !action)
        log.error({
          msg: "signer reported a confirmed attestation failed without a final block or an operator; its gas booking stands",
          chain_id: chain.chainId,
          attestation_id: Number(row.id),
          request_id: o.requestId,
          tx_hash: o.txHash,
          error_code: o.errorCode,
        });
      if (!action) continue;
      const left = action === "unbook";
      const done = await withTransaction(pool, async (c) => {
        const now = await c.query<{ status: string; booked_generation: number; final: boolean }>(
          `SELECT status, booked_generation, final_at IS NOT NULL AS final
             FROM attest.attestations WHERE id = $1 FOR UPDATE`,
          [row.id],
        );
        const cur = now.rows[0];
        if (
          cur?.status !== "confirmed" ||
          cur.final ||
          cur.booked_generation !== row.booked_generation
        )
          return false;
        if (!left) {
          await c.query("UPDATE attest.attestations SET final_at = now() WHERE id = $1", [row.id]);
          return true;
        }
        if (row.tx_hash !== null && row.fee !== null && row.fee > 0n) {
          const result = await ledger.createTransfers(
            [
              gasUnbooking({
                chainId: o.chainId,
                of: `attestation ${row.id} (${o.requestId})`,
                txHash: row.tx_hash,
                hotWallet: o.from,
                fee: row.fee,
                generation: row.booked_generation,
              }),
            ],
            { client: c },
          );
          const status = result[0]?.status;
          if (status !== "created" && status !== "exists")
            throw new Error(
              `attestation ${row.id}: gas reversal refused (${JSON.stringify(result[0])})`,
            );
        }
        await c.query(
          `UPDATE attest.attestations SET status = 'requested', tx_hash = NULL, fee = NULL,
                  confirmed_at = NULL WHERE id = $1`,
          [row.id],
        );
        return true;
      });
      if (!done) continue;
      followed++;
      if (left)
        log.warn({
          msg: "confirmed attestation left the chain (reorg): gas unbooked, followed until it mines again",
          chain_id: chain.chainId,
          attestation_id: Number(row.id),
          tx_hash: row.tx_hash,
          reorgs: o.reorgs,
          status: o.status,
        });
    }
    return followed;
  }

  async function settle(chain: ChainConfig): Promise<number> {
    const ledger = createLedger({ common, pool });
    try {
      await follow(chain, ledger);
      return await settleRequested(chain, ledger);
    } finally {
      await ledger.close();
    }
  }

  async function settleRequested(chain: ChainConfig, ledger: Ledger): Promise<number> {
    const pending = await pool.query<{ id: string; request_id: string }>(
      "SELECT id, request_id FROM attest.attestations WHERE chain_id = $1 AND status = 'requested' ORDER BY id",
      [chain.chainId],
    );
    if (pending.rows.length === 0) return 0;
    const outcomes = await sender.getTxOutcomes(pool, {
      requestIds: pending.rows.map((r) => r.request_id),
    });
    let settled = 0;
    for (const o of outcomes) {
      const row = pending.rows.find((r) => r.request_id === o.requestId)!;
      const mined = o.status === "confirmed" || o.status === "finalized";
      // A fee is owed for any attempt that mined (reverted included); `failed` before a nonce has none.
      // A cancel mined at the attestation's nonce is one too: the hot wallet paid its gas (txHash
      // and fee are the cancel's), and the chain's `fee` fact of it pairs only with this booking,
      // as sweeps, cold moves and withdrawals book theirs.
      const paid = (mined || o.status === "failed") && o.txHash !== null && o.fee !== null;
      if (!mined && o.status !== "failed") continue;
      if (!mined && !failureIsEvidenced(o)) {
        // Settled failed, the next block would be attested (and its gas booked) while this
        // transaction may still mine: it stays requested, holding the chain's attestations.
        log.error({
          msg: "signer reported an attestation failed without a final block or an operator; it stays requested",
          chain_id: chain.chainId,
          attestation_id: Number(row.id),
          request_id: o.requestId,
          tx_hash: o.txHash,
          error_code: o.errorCode,
        });
        continue;
      }
      const ok = mined && o.receiptSuccess === true && !o.cancelled;
      const done = await withTransaction(pool, async (c) => {
        // Settling runs beside another reconciler's (outside the chain's lock): under the row's
        // lock, only a row still requested, on the outcome the signer reports now. The one read
        // above may be stale: another settled it meanwhile, or a reorg took that transaction out
        // and a bumped attempt mined; booking its gas then pays a fee the chain never took.
        const now = await c.query<{ status: string }>(
          "SELECT status FROM attest.attestations WHERE id = $1 FOR UPDATE",
          [row.id],
        );
        if (now.rows[0]?.status !== "requested") return false;
        const [fresh] = await sender.getTxOutcomes(c, { requestIds: [o.requestId] });
        if (
          fresh?.status !== o.status ||
          fresh.txHash !== o.txHash ||
          fresh.fee !== o.fee ||
          fresh.reorgs !== o.reorgs ||
          fresh.cancelled !== o.cancelled
        )
          return false; // the next pass settles on what the signer reports then
        if (paid) {
          const result = await ledger.createTransfers(
            [
              gasTransfer({
                chainId: o.chainId,
                txHash: o.txHash!,
                hotWallet: o.from,
                fee: o.fee!,
                memo: `gas of attestation ${row.id} (${o.requestId})`,
                generation: o.reorgs,
              }),
            ],
            { client: c },
          );
          const status = result[0]?.status;
          if (status !== "created" && status !== "exists")
            throw new Error(
              `attestation ${row.id}: gas booking refused (${JSON.stringify(result[0])})`,
            );
        }
        // A failed request is final (with evidence, above: a final block or an operator); a
        // confirmed one is followed until finalized (follow above).
        await c.query(
          `UPDATE attest.attestations SET status = $2, tx_hash = $3, error = $4,
                  confirmed_at = CASE WHEN $2 = 'confirmed' THEN now() END,
                  fee = $5, booked_generation = $6,
                  final_at = CASE WHEN $2 = 'failed' OR $7 THEN now() END
            WHERE id = $1 AND status = 'requested'`,
          [
            row.id,
            ok ? "confirmed" : "failed",
            o.txHash?.toLowerCase() ?? null,
            ok ? null : (o.errorCode ?? (o.cancelled ? "CANCELLED" : "REVERTED")),
            paid ? o.fee!.toString() : null,
            o.reorgs,
            o.status === "finalized",
          ],
        );
        return true;
      });
      if (!done) continue;
      settled++;
      log[ok ? "info" : "warn"]({
        msg: ok ? "attestation confirmed" : "attestation failed",
        chain_id: chain.chainId,
        attestation_id: Number(row.id),
        tx_hash: o.txHash,
        error_code: o.errorCode,
      });
    }
    return settled;
  }

  /** Why a run's breaks refuse attestation (open breaks, or balance breaks acknowledged or not). */
  function breaksRefuse(chainId: number, run: StoredRun): AttestTickResult | undefined {
    const open = run.alertingCount ?? run.breakCount;
    if (open > 0) {
      log.warn({
        msg: "not attested: the reconciliation of this block has open breaks",
        chain_id: chainId,
        run_id: run.id,
        block: run.block,
        open_breaks: open,
      });
      return {
        attested: [],
        skipped: "open_breaks",
        runId: run.id,
        block: run.block,
        detail: `run ${run.id} at block ${run.block} has ${open} open break(s)`,
      };
    }
    const blocking = run.breaks.filter((b) => BLOCKING_BREAKS.has(b.type as BreakType));
    if (blocking.length > 0) {
      const types = [...new Set(blocking.map((b) => b.type))].sort();
      log.warn({
        msg: "not attested: the reconciliation of this block found a solvency shortfall or an unexplained balance difference",
        chain_id: chainId,
        run_id: run.id,
        block: run.block,
        break_types: types,
        breaks: blocking.length,
      });
      return {
        attested: [],
        skipped: "balance_breaks",
        runId: run.id,
        block: run.block,
        detail: `run ${run.id} at block ${run.block} has ${blocking.length} ${types.join("/")} break(s), acknowledged or not`,
      };
    }
    return undefined;
  }

  async function tick(
    chain: ChainConfig,
    schedule: AttestationSchedule,
    options: AttestTickOptions = {},
  ): Promise<AttestTickResult> {
    const chainId = chain.chainId;
    const stopIfLost = () => {
      if (options.signal?.aborted) throw new AttestLockLostError(chainId);
    };
    // Settling is safe beside another holder (each write re-checks its row; gas bookings are
    // idempotent): the lock guards the one-at-a-time choice of what to attest below.
    await settle(chain);
    stopIfLost();
    const contract = await getContract(pool, chainId, RESERVES_ATTESTOR);
    if (!contract)
      return {
        attested: [],
        skipped: "no_contract",
        detail: "no ReservesAttestor deployed on this chain",
      };
    if (await attestationInFlight(pool, chainId))
      return { attested: [], skipped: "in_flight", detail: "an attestation is still being sent" };
    // Runs are at the confirmation rule's block; an attestation is for good (the contract takes no
    // block twice), so only a run at a block the indexer has published final (the finality rule)
    // and still on our chain there: a reorg between the run and finality took what it counted.
    const newest = (await listRuns(pool, { chainId, limit: 20 })).find(
      (r) => r.status === "completed",
    );
    if (!newest)
      return { attested: [], skipped: "no_run", detail: "no completed reconciliation run" };
    // A break the newest run found stops attestation, whichever block is attested.
    const newestRun = await readRun(pool, newest.id);
    const refused = breaksRefuse(chainId, newestRun);
    if (refused) return refused;
    const final = await readFinalized(pool, chainId);
    const candidate =
      final === null
        ? undefined
        : (await listRuns(pool, { chainId, limit: 20, maxBlock: Number(final.number) })).find(
            (r) => r.status === "completed",
          );
    if (!candidate)
      return {
        attested: [],
        skipped: "not_final",
        runId: newest.id,
        block: newest.block,
        detail: `no completed run at or below the final block (${final === null ? "none published yet" : final.number}); newest run ${newest.id} is at block ${newest.block}`,
      };
    const run = candidate.id === newest.id ? newestRun : await readRun(pool, candidate.id);
    const ours = await pool.query<{ hash: string }>(
      "SELECT hash FROM chain.canonical_blocks WHERE chain_id = $1 AND number = $2",
      [chainId, run.block],
    );
    if (run.blockHash === null || ours.rows[0]?.hash !== run.blockHash)
      return {
        attested: [],
        skipped: "not_final",
        runId: run.id,
        block: run.block,
        detail: `run ${run.id} counted block ${run.block} as ${run.blockHash ?? "(hash not stored)"}; the final chain has ${ours.rows[0]?.hash ?? "no stored block"} there`,
      };
    const lastBlock = await lastAttestedBlock(pool, chainId);
    if (lastBlock !== null && run.block < lastBlock + schedule.everyBlocks)
      return {
        attested: [],
        skipped: "not_due",
        runId: run.id,
        block: run.block,
        detail: `last attested block ${lastBlock}, next at ${lastBlock + schedule.everyBlocks}`,
      };
    if (candidate.id !== newest.id) {
      const refused = breaksRefuse(chainId, run);
      if (refused) return refused;
    }
    // Only the assets the run checked: one listed after it (or by another process's newer config)
    // had neither its reserves read nor its liabilities counted at that block, and would be
    // published unreconciled with liabilities of 0. It is attested from the first run that checks it.
    const tokens: Address[] = [
      zeroAddress,
      ...chain.tokens.map((t) => getAddress(t.address)),
    ].filter((t) => runChecked(run, assetIdOf(chainId, t), t));
    const known = refusedRuns.get(chainId);
    if (known?.runId === run.id) return known;
    const refuse = (result: AttestTickResult & { runId: number }) => {
      refusedRuns.set(chainId, result);
      return result;
    };
    // The reserves' reads may take minutes at scale: a lost lock stops the tick without waiting
    // them out (they run on, unheard; what they write is the customers' salts, kept either way).
    const all = await unlessAborted(
      Promise.all(tokens.map((t) => figures(chain, run.id, t))),
      options.signal,
      () => new AttestLockLostError(chainId),
    );
    const differing = all.filter((f) => f.liabilities !== recordedLiabilities(run, f.assetId));
    if (differing.length > 0) {
      const f = differing[0]!;
      const recorded = recordedLiabilities(run, f.assetId);
      log.warn({
        msg: "not attested: the customers' balances at the run do not sum to the liabilities it recorded",
        chain_id: chainId,
        run_id: run.id,
        block: run.block,
        asset: f.assetId,
        leaves_sum: f.liabilities.toString(),
        run_liabilities: recorded.toString(),
      });
      return refuse({
        attested: [],
        skipped: "liabilities_differ",
        runId: run.id,
        block: run.block,
        detail: `${f.assetId}: the leaves sum to ${f.liabilities} but run ${run.id} recorded liabilities of ${recorded}`,
      });
    }
    // The reserves read now at the block against what the run counted there: an address it did
    // not read (an incremental run counts it at its last-read balance) that moved with no fact
    // indexed is a difference no reconciliation of this block checked (a shortfall or an
    // unexplained balance it would have broken on): not published.
    const reservesDiffer = all.filter((f) => f.reserves !== recordedReserves(run, f.assetId));
    if (reservesDiffer.length > 0) {
      const f = reservesDiffer[0]!;
      const recorded = recordedReserves(run, f.assetId);
      log.warn({
        msg: "not attested: the reserves read at the run's block differ from the custody assets it counted",
        chain_id: chainId,
        run_id: run.id,
        block: run.block,
        asset: f.assetId,
        reserves: f.reserves.toString(),
        run_reserves: recorded.toString(),
      });
      return refuse({
        attested: [],
        skipped: "reserves_differ",
        runId: run.id,
        block: run.block,
        detail: `${f.assetId}: the custody addresses hold ${f.reserves} at block ${run.block} but run ${run.id} counted ${recorded}`,
      });
    }
    // An asset nobody holds and nobody is owed is not worth a transaction, unless its last
    // attestation held or owed something: customers' proofs and dApps would keep that figure, now
    // wrong, for good. A fall to zero is attested once.
    const due: AttestationFigures[] = [];
    for (const f of all)
      if (
        f.reserves > 0n ||
        f.liabilities > 0n ||
        (await lastAttestedHeld(pool, chainId, f.assetId))
      )
        due.push(f);
    // The reserves' reads may take minutes: the checks above (in flight, due) are stale if the lock
    // went meanwhile, and another reconciler may have attested.
    stopIfLost();
    const written = await withTransaction(pool, async (c) => {
      // The chain's lock alone does not keep two ticks from committing: it can go between the
      // check above and the commit, or unheard for up to its lost-after time, and a reconciler that
      // took it meanwhile finds nothing in flight (this tick's request is not committed yet). Both
      // would request, and gas be paid twice. Under this lock the checks are made again against
      // what is committed: of two ticks, the later one finds the first's request.
      await c.query(
        "SELECT pg_advisory_xact_lock(hashtextextended('attest.attestations:' || $1::text, 0))",
        [chainId],
      );
      if (await attestationInFlight(c, chainId))
        return {
          skipped: "in_flight" as const,
          detail: "another tick requested an attestation meanwhile; it is still being sent",
        };
      const last = await lastAttestedBlock(c, chainId);
      if (last !== null && run.block < last + schedule.everyBlocks)
        return {
          skipped: "not_due" as const,
          detail: `another tick attested block ${last} meanwhile, next at ${last + schedule.everyBlocks}`,
        };
      const out: AttestationRecord[] = [];
      for (const f of due) {
        const requestId = requestIdOf(chainId, f.token, f.block);
        const inserted = await c.query<{ id: string }>(
          `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
             reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
             addresses, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (chain_id, asset_id, block_number) DO NOTHING RETURNING id`,
          [
            chainId,
            f.assetId,
            f.token.toLowerCase(),
            f.block,
            f.runId,
            contract.address.toLowerCase(),
            f.reserves.toString(),
            f.liabilities.toString(),
            f.liabilitiesRoot,
            f.addressesRoot,
            f.reportHash,
            f.leafCount,
            JSON.stringify(f.addresses.map((a) => ({ ...a, balance: a.balance.toString() }))),
            requestId,
          ],
        );
        const id = inserted.rows[0]?.id;
        if (!id) continue;
        await c.query(
          `INSERT INTO attest.leaves (attestation_id, customer_id, balance)
           SELECT $1, x.customer_id, x.balance::numeric
             FROM unnest($2::text[], $3::text[]) AS x(customer_id, balance)`,
          [id, f.leaves.map((l) => l.customerId), f.leaves.map((l) => l.balance.toString())],
        );
        await sender.requestTransaction(c, {
          id: requestId,
          chainId,
          from: contract.hotWallet,
          to: contract.address,
          value: 0n,
          data: encodeFunctionData({
            abi: reservesAttestor.abi,
            functionName: "attest",
            args: [
              f.token,
              BigInt(f.block),
              f.reserves,
              f.liabilities,
              f.liabilitiesRoot,
              f.addressesRoot,
              f.reportHash,
            ],
          }),
          kind: ATTESTATION_KIND,
          refId: id,
        });
        out.push({
          ...f,
          id: Number(id),
          requestId,
          contract: contract.address,
          status: "requested",
          txHash: null,
        });
      }
      // Last, before the commit: a lock lost while writing rolls the attestations back.
      stopIfLost();
      return { out };
    });
    if (!("out" in written)) {
      log.info({
        msg: "not attested: another tick attested meanwhile",
        chain_id: chainId,
        run_id: run.id,
        block: run.block,
        detail: written.detail,
      });
      return { attested: [], ...written, runId: run.id, block: run.block };
    }
    const attested = written.out;
    for (const a of attested)
      log.info({
        msg: "attestation requested",
        chain_id: chainId,
        attestation_id: a.id,
        asset: a.token,
        block: a.block,
        reserves: a.reserves.toString(),
        liabilities: a.liabilities.toString(),
        customers: a.leafCount,
      });
    return { attested, runId: run.id, block: run.block };
  }

  return { tick, settle, figures };
}

/** Each customer's salt for the asset, created (random, 32 bytes) the first time it is needed. */
export async function ensureSalts(
  client: Pick<PoolClient, "query">,
  assetId: string,
  customerIds: readonly string[],
): Promise<Map<string, Hex>> {
  if (customerIds.length > 0)
    await client.query(
      `INSERT INTO attest.salts (customer_id, asset_id, salt)
       SELECT x.id, $1, x.salt FROM unnest($2::text[], $3::text[]) AS x(id, salt)
       ON CONFLICT DO NOTHING`,
      [assetId, customerIds, customerIds.map(() => `0x${randomBytes(32).toString("hex")}`)],
    );
  const r = await client.query<{ customer_id: string; salt: Hex }>(
    "SELECT customer_id, salt FROM attest.salts WHERE asset_id = $1 AND customer_id = ANY($2::text[])",
    [assetId, customerIds],
  );
  return new Map(r.rows.map((x) => [x.customer_id, x.salt]));
}
