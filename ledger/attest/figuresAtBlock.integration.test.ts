/**
 * An attestation's liabilities are the customers' balances as the reconciliation run it attests
 * counted them, paired with the reserves at that run's block (real ledger, real reconciler, real
 * anvil balances):
 * - a withdrawal booked after the run (the reviewer's case: reserves 150 at block B against
 *   liabilities lowered by a withdrawal mined later) and one the run deferred because its fact is
 *   above B are both left out of the leaves, which sum to the run's recorded liabilities;
 * - a wallet registered after the run, holding value at B, is not in the reserves (the run did not
 *   count it: attested, it overstated the coverage);
 * - a run whose solvency shortfall an operator acknowledged (so nothing alerts) is still not
 *   attested, and nothing is requested from the signer;
 * - a confirmed attestation is followed until final (the signer's outcomes scripted here; its own
 *   reorg handling is signer/reorg.integration.test.ts): reorged out, its gas is unbooked and it is
 *   no longer served as confirmed; mined again, its gas is booked anew at the new fee;
 * - a `failed` the signer reports without evidence (no final block, no operator: failureIsEvidenced)
 *   changes nothing: a requested attestation stays requested, a confirmed one keeps its gas and is
 *   followed on (the signer's real outcomes, its request row set by SQL); an operator's fail (a
 *   cancel, its nonce being unused) settles it once the cancel's block is final.
 */
import { type Address, type Hex, zeroAddress, zeroHash } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type ChainConfig } from "../../chains/index.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { recordContract } from "../../indexers/index.js";
import { anvilRpc, freshAddress, type Rpc, watch } from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import {
  failTxRequestByOperator,
  getTxOutcomes,
  nonceEvidenceFromChains,
  requestTransaction,
} from "../../signer/index.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { setTxRequestState } from "../../signer/testing/txRequestState.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { acknowledgeBreak } from "../recon/breakStates.js";
import { createReconciler, type Reconciler } from "../recon/reconcile.js";
import { transferId } from "../transferId.js";
import {
  ATTESTATION_KIND,
  type Attestor,
  createAttestor,
  ensureSalts,
  requestIdOf,
} from "./attest.js";
import { RESERVES_ATTESTOR } from "./deploy.js";
import { buildMerkleSumTree } from "./merkleSum.js";
import { liabilitiesProof } from "./proofs.js";
import type { AttestationOutcome, AttestationSender } from "./sender.js";

const A = 31337;
const S = 31338;
const ETH = (chainId: number) => `${chainId}:${zeroAddress}`;
const HOT_A = freshAddress(501);
const HOT_S = freshAddress(502);
const OUTSIDER = freshAddress(599);
const COLD_LATE = freshAddress(503);
const ATTESTOR_A = freshAddress(504);

let ctx: TestContext;
let pool: Pool;
let ledger: Ledger;
let reconciler: Reconciler;
let attestor: Attestor;
const requested: string[] = [];

/** The outcomes the signer reports, as a test scripts them. */
let outcomes: AttestationOutcome[] = [];

/** A signer that records what it is asked to send (these tests expect no request). */
const sender: AttestationSender = {
  requestTransaction: async (_client, request) => {
    requested.push(request.id);
  },
  getTxOutcomes: async (_client, { requestIds }) =>
    outcomes.filter((o) => requestIds.includes(o.requestId)),
};

/** The chain's config with a 0-block confirmation rule: the stored tip is final. */
const chainOf = (chainId: number): ChainConfig => ({
  ...ctx.config.chains.find((c) => c.chainId === chainId)!,
  confirmations: { kind: "blocks", blocks: 0 },
});

/** Set a balance, mine it into a block and store that block as the indexed tip; returns it. */
async function balanceAtNewBlock(chain: ChainConfig, address: Hex, wei: bigint): Promise<number> {
  const rpc: Rpc = anvilRpc(chain.rpcUrls[0]!);
  await rpc("anvil_setBalance", [address, `0x${wei.toString(16)}`]);
  await rpc("evm_mine");
  const block = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
  // One block more, so a later anvil_setBalance (applied to the newest state) leaves this one be.
  await rpc("evm_mine");
  await setTip(chain.chainId, block + 1);
  return block;
}

async function setTip(chainId: number, block: number): Promise<void> {
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number`,
    [chainId, block, `0x${block.toString(16).padStart(64, "0")}`],
  );
}

let n = 0;
const move = (
  chainId: number,
  debit: string,
  credit: string,
  amount: bigint,
  withdrawal?: { txHash: string; position: string },
) =>
  ledger.transfer({
    id: transferId(`figures at block ${++n}`),
    assetId: ETH(chainId),
    debit,
    credit,
    amount,
    ...(withdrawal
      ? { kind: "withdrawal", chainRef: { chainId, ...withdrawal } }
      : { kind: "manual" }),
  });

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: A }, { chainId: S }] });
  pool = ctx.db.pool;
  ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await watch(pool, A, [{ address: HOT_A, kind: "hot", owner: "hot-a" }]);
  await watch(pool, S, [{ address: HOT_S, kind: "hot", owner: "hot-s" }]);
  reconciler = createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool,
    chains: adapterPerChain(ctx.common),
  });
  attestor = createAttestor({
    common: ctx.common,
    pool,
    sender,
    chains: adapterPerChain(ctx.common),
  });
}, 60_000);
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("attestation figures", () => {
  it("liabilities and leaves are those the run counted at its block, like the reserves", async () => {
    const chain = chainOf(A);
    const hot = `custody:hot:${HOT_A}`;
    // At block B the hot wallet holds 150: alice is owed 100, bob 50.
    await move(A, hot, "user:alice", 100n);
    await move(A, hot, "user:bob", 50n);
    // A wallet that already holds 1000 at B, brought under custody only after the run (below).
    await anvilRpc(chain.rpcUrls[0]!)("anvil_setBalance", [COLD_LATE, "0x3e8"]);
    const B = await balanceAtNewBlock(chain, HOT_A, 150n);
    // Bob's withdrawal of 20 is booked before the run, but its transaction is mined at B + 1: the
    // run defers it to a later run.
    const tx = `0x${"b0".repeat(32)}`;
    await pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, 20, 'confirmed')`,
      [A, B + 1, `0x${"c1".repeat(32)}`, tx, zeroAddress, HOT_A.toLowerCase(), OUTSIDER],
    );
    await move(A, "user:bob", hot, 20n, { txHash: tx, position: "tx" });
    const run = await reconciler.run({ chain, block: B, full: true });
    expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
    expect(run.deferred).toBe(1);
    const owed = run.checks.find((c) => c.scope === "solvency" && c.assetId === ETH(A));
    expect(owed?.ledger).toBe(150n);

    // After the run, alice withdraws 60 (mined after B: the chain holds 70 by then), and the wallet
    // is registered: the run did not count it, nor does its attestation.
    await move(A, "user:alice", hot, 60n);
    await balanceAtNewBlock(chain, HOT_A, 70n);
    await watch(pool, A, [{ address: COLD_LATE, kind: "cold", owner: "cold-late" }]);

    const f = await attestor.figures(chain, run.runId, zeroAddress);
    expect(f.block).toBe(B);
    expect([f.reserves, f.liabilities]).toEqual([150n, 150n]);
    expect(f.addresses.map((a) => a.address)).toEqual([HOT_A.toLowerCase()]);
    // (The tree orders its leaves by their salted hashes.)
    const leaves = [...f.leaves].sort((x, y) => x.customerId.localeCompare(y.customerId));
    expect(leaves).toEqual([
      { customerId: "alice", balance: 100n },
      { customerId: "bob", balance: 50n },
    ]);
  });

  it("does not attest a run with an acknowledged solvency shortfall", async () => {
    const chain = chainOf(S);
    await recordContract(pool, {
      chainId: S,
      name: RESERVES_ATTESTOR,
      address: freshAddress(503) as Address,
      hotWallet: HOT_S as Address,
      initCodeHash: null,
      deployTxHash: `0x${"d0".repeat(32)}`,
      blockNumber: 1n,
    });
    // The hot wallet holds what carol was paid in; dave is owed 500 nobody holds (a booking out
    // of suspense): the ledger's custody matches the chain, the customers are owed more.
    await move(S, `custody:hot:${HOT_S}`, "user:carol", 100n);
    await move(S, "suspense", "user:dave", 500n);
    const block = await balanceAtNewBlock(chain, HOT_S, 100n);
    const first = await reconciler.run({ chain, block, full: true });
    expect(first.breaks.map((b) => b.type)).toEqual(["solvency_shortfall"]);
    await acknowledgeBreak(pool, {
      ref: `${first.runId}:0`,
      by: "ops@test",
      reason: "known: dave's credit is being investigated",
    });
    const again = await reconciler.run({ chain, block, full: true });
    expect(again.breaks.map((b) => [b.type, b.state])).toEqual([
      ["solvency_shortfall", "acknowledged"],
    ]);
    expect(again.alerting).toBe(0);

    const tick = await attestor.tick(chain, { everyBlocks: 1 });
    expect(tick).toMatchObject({
      attested: [],
      skipped: "balance_breaks",
      runId: again.runId,
      block,
    });
    const stored = await pool.query("SELECT 1 FROM attest.attestations WHERE chain_id = $1", [S]);
    expect(stored.rows).toEqual([]);
    expect(requested).toEqual([]);
  });
});

describe("following an attestation until final", () => {
  const assetId = ETH(A);

  /** An attestation of erin's 40 at `block`, stored `requested` as a tick stores one; its id. */
  async function storedAttestation(block: number, requestId: string): Promise<string> {
    const salts = await ensureSalts(pool, assetId, ["erin"]);
    const tree = buildMerkleSumTree([
      { customerId: "erin", balance: 40n, salt: salts.get("erin")! },
    ]);
    const inserted = await pool.query<{ id: string }>(
      `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
         reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
         addresses, request_id)
       VALUES ($1, $2, $3, $4, 0, $5, 40, 40, $6, $7, $7, 1, '[]', $8) RETURNING id`,
      [
        A,
        assetId,
        zeroAddress,
        block,
        ATTESTOR_A.toLowerCase(),
        tree.root.hash,
        zeroHash,
        requestId,
      ],
    );
    const id = inserted.rows[0]!.id;
    await pool.query(
      "INSERT INTO attest.leaves (attestation_id, customer_id, balance) VALUES ($1, 'erin', 40)",
      [id],
    );
    return id;
  }
  const state = async (id: string) =>
    (
      await pool.query<{ status: string; final: boolean }>(
        "SELECT status, final_at IS NOT NULL AS final FROM attest.attestations WHERE id = $1",
        [id],
      )
    ).rows[0];
  /** Gas booked for a transaction, less what was given back. */
  const gasBooked = async (tx: Hex) =>
    (
      await pool.query<{ net: string }>(
        `SELECT coalesce(sum(CASE WHEN d.name = 'fees:gas' THEN t.amount ELSE -t.amount END), 0)::text AS net
           FROM ledger.transfers t JOIN ledger.accounts d ON d.id = t.debit_account_id
          WHERE t.tx_hash = $1
             OR t.reverses_id IN (SELECT id FROM ledger.transfers WHERE tx_hash = $1)`,
        [tx],
      )
    ).rows[0]!.net;

  it("reorged out after confirmation: gas unbooked and not served; mined again: booked at its new fee; then final", async () => {
    const chain = chainOf(A);
    const block = 900_001;
    const tx = `0x${"a7".repeat(32)}` as Hex;
    const requestId = requestIdOf(A, zeroAddress, block);
    const id = await storedAttestation(block, requestId);
    const signerSays = (o: Partial<AttestationOutcome>) => {
      outcomes = [
        {
          requestId,
          chainId: A,
          from: HOT_A,
          status: "confirmed",
          txHash: tx,
          receiptSuccess: true,
          fee: 1000n,
          cancelled: false,
          errorCode: null,
          nonce: 7n,
          finalizedAt: null,
          reorgs: 0,
          ...o,
        },
      ];
    };
    const served = async () =>
      (await liabilitiesProof(pool, { customerId: "erin", assetId })).found;

    signerSays({});
    await attestor.settle(chain);
    expect(await state(id)).toEqual({ status: "confirmed", final: false });
    expect([await gasBooked(tx), await served()]).toEqual(["1000", true]);

    // A reorg above the final block takes the transaction out; the signer sends the same bytes again.
    signerSays({ status: "broadcast", reorgs: 1, receiptSuccess: null, fee: null });
    await attestor.settle(chain);
    expect(await state(id)).toEqual({ status: "requested", final: false });
    expect([await gasBooked(tx), await served()]).toEqual(["0", false]);

    // Mined again in another block, at another base fee.
    signerSays({ reorgs: 1, fee: 1200n });
    await attestor.settle(chain);
    expect(await state(id)).toEqual({ status: "confirmed", final: false });
    expect([await gasBooked(tx), await served()]).toEqual(["1200", true]);

    signerSays({ status: "finalized", reorgs: 1, fee: 1200n, finalizedAt: new Date() });
    await attestor.settle(chain);
    await attestor.settle(chain);
    expect(await state(id)).toEqual({ status: "confirmed", final: true });
    expect(await gasBooked(tx)).toBe("1200");
  });

  it("a failure the signer reports without a final block or an operator changes nothing", async () => {
    // The signer's own request intake and outcomes; its rows set to the states the tracker would
    // record (signer/testing/txRequestState.ts): an unevidenced `failed` is a signer bug the real
    // tracker cannot produce on anvil.
    const chain = chainOf(A);
    const withSigner = createAttestor({
      common: ctx.common,
      pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(ctx.common),
    });
    const stored = async (block: number) => {
      const requestId = requestIdOf(A, zeroAddress, block);
      const id = await storedAttestation(block, requestId);
      await withTransaction(pool, (c) =>
        requestTransaction(c, {
          id: requestId,
          chainId: A,
          from: HOT_A,
          to: ATTESTOR_A,
          value: 0n,
          data: "0x",
          kind: ATTESTATION_KIND,
          refId: id,
        }),
      );
      return { id, requestId };
    };

    // Requested, reported failed at a nonce with no final block: not settled (settled `failed`,
    // the next block would be attested while this transaction may still mine).
    const a = await stored(900_101);
    await setTxRequestState(pool, a.requestId, {
      status: "failed",
      nonce: 41,
      errorCode: "SOMETHING",
    });
    await withSigner.settle(chain);
    await withSigner.settle(chain);
    expect(await state(a.id)).toEqual({ status: "requested", final: false });
    // The operator's way out (AttestationStuck step 4): `tx-requests fail` checks the chain at
    // its nonce. Nothing used nonce 41: the failure is a cancel, and the request is followed
    // again (`broadcast`, its signer error cleared); still nothing settled while it may mine.
    const decided = await failTxRequestByOperator(
      pool,
      { requestId: a.requestId, by: "op", reason: "nothing of ours at its nonce" },
      nonceEvidenceFromChains([chain]),
    );
    expect(decided).toEqual({ from: "failed", to: "broadcast", cancelling: true });
    await withSigner.settle(chain);
    expect(await state(a.id)).toEqual({ status: "requested", final: false });
    // The cancel's block final (the tracker's record, signer/operator.integration.test.ts): the
    // operator's failure (OPERATOR_FAILED) is evidence, and the attestation is settled failed.
    await setTxRequestState(pool, a.requestId, {
      status: "failed",
      nonce: 41,
      errorCode: "OPERATOR_FAILED",
      finalized: true,
    });
    await withSigner.settle(chain);
    expect(await state(a.id)).toEqual({ status: "failed", final: true });

    // Confirmed and its gas booked, then reported failed without evidence: the booking and the
    // confirmation stand, followed on until final.
    const b = await stored(900_102);
    const tx = `0x${"b8".repeat(32)}` as Hex;
    const mined = { txHash: tx, fee: 1000n, block: 900_200, nonce: 42 };
    await setTxRequestState(pool, b.requestId, { status: "confirmed", ...mined });
    await withSigner.settle(chain);
    expect([await state(b.id), await gasBooked(tx)]).toEqual([
      { status: "confirmed", final: false },
      "1000",
    ]);
    await setTxRequestState(pool, b.requestId, {
      status: "failed",
      ...mined,
      errorCode: "SOMETHING",
    });
    await withSigner.settle(chain);
    await withSigner.settle(chain);
    expect([await state(b.id), await gasBooked(tx)]).toEqual([
      { status: "confirmed", final: false },
      "1000",
    ]);
    await setTxRequestState(pool, b.requestId, { status: "confirmed", ...mined, finalized: true });
    await withSigner.settle(chain);
    expect([await state(b.id), await gasBooked(tx)]).toEqual([
      { status: "confirmed", final: true },
      "1000",
    ]);
  });
});
