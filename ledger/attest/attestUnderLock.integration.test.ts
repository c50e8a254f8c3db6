/**
 * The reconciler role's attestation step under its per-chain lock (role.ts): a tick whose lock is
 * lost while it reads the reserves (the lock's session ended, and another reconciler took the
 * chain) stores no attestation and asks the signer for nothing; the same tick with its lock held
 * does both. Real Postgres, anvil, the signer's request intake, and an RPC proxy that slows the
 * reserves read.
 */
import { type Hex, zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type ChainConfig, createEvmAdapter } from "../../chains/index.js";
import { createHealth } from "../../foundation/health.js";
import type { RoleHandle } from "../../foundation/roles.js";
import {
  createIngestor,
  type Ingestor,
  readFinalized,
  recordContract,
} from "../../indexers/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { waitFor } from "../../ops/testing/wait.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type RpcProxy, startRpcProxy } from "../../signer/testing/rpcProxy.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createReconciler } from "../recon/reconcile.js";
import { transferId } from "../transferId.js";
import { createAttestor } from "./attest.js";
import { RESERVES_ATTESTOR } from "./deploy.js";
import { createAttestRole } from "./role.js";

const CHAIN_ID = 31337;
/** The attestation step's lock key for the chain (role.ts LOCK_BASE + chain id). */
const ATTEST_LOCK = BigInt(0x6174_7374_0000 + CHAIN_ID);
const HOT = freshAddress(601);

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let proxy: RpcProxy;
let ingestor: Ingestor;
let ledger: Ledger;
/** The block of the clean, final reconciliation run the role attests. */
let block: number;

async function mineAndSync(n: number): Promise<void> {
  await rpc("anvil_mine", [`0x${n.toString(16)}`]);
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
}

const stored = async () =>
  (
    await ctx.db.pool.query<{ attestations: number; requests: number }>(
      `SELECT (SELECT count(*)::int FROM attest.attestations WHERE chain_id = $1) AS attestations,
              (SELECT count(*)::int FROM custody.tx_requests
                WHERE chain_id = $1 AND kind = 'attestation') AS requests`,
      [CHAIN_ID],
    )
  ).rows[0]!;

/** The attestation step of the reconciler role, reading the reserves through the proxy. */
function startRole(): Promise<RoleHandle> {
  return createAttestRole({ requestTransaction, getTxOutcomes }, (common) =>
    adapterPerChain(common, (c) => createEvmAdapter({ ...c, rpcUrls: [proxy.url] }, { common })),
  ).start({
    common: ctx.common,
    pool: ctx.db.pool,
    redis: ctx.redis.redis,
    queues: ctx.queues,
    health: createHealth(),
    chains: [{ ...chain, attestation: { everyBlocks: 1, intervalMs: 500 } }],
    httpPlugins: [],
  });
}

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  proxy = await startRpcProxy(chain.rpcUrls[0]!);
  await watch(ctx.db.pool, CHAIN_ID, [{ address: HOT, kind: "hot", owner: "hot-1" }]);
  await recordContract(ctx.db.pool, {
    chainId: CHAIN_ID,
    name: RESERVES_ATTESTOR,
    address: freshAddress(602),
    hotWallet: HOT,
    initCodeHash: null,
    deployTxHash: `0x${"d1".repeat(32)}`,
    blockNumber: 1n,
  });
  ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: ctx.common }),
  });
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  // The hot wallet holds what alice is owed: a clean run, with reserves to attest.
  await ledger.transfer({
    id: transferId("attest under lock: alice"),
    assetId: `${CHAIN_ID}:${zeroAddress}`,
    debit: `custody:hot:${HOT}`,
    credit: "user:alice",
    amount: 100n,
    kind: "manual",
  });
  await rpc("anvil_setBalance", [HOT, "0x64"]);
  await mineAndSync(5);
  block = Number(BigInt(await rpc<Hex>("eth_blockNumber"))) - 2;
  const run = await createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool: ctx.db.pool,
    chains: adapterPerChain(ctx.common),
  }).run({ chain, block, full: true });
  expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
  await waitFor(`block ${block} published final`, async () => {
    await mineAndSync(8);
    return Number((await readFinalized(ctx.db.pool, CHAIN_ID))?.number ?? -1) >= block;
  });
}, 120_000);

afterAll(async () => {
  await ingestor?.stop();
  await ledger?.close();
  await proxy?.close();
  await ctx?.cleanup();
});

describe("the attestation step under its chain lock", () => {
  // First: the tests below leave an attestation in flight, which a tick waits out before reading.
  it("a tick stops at its lock's loss while the reserves are still being read, not after the read", async () => {
    // A read at scale takes minutes; here one answer of the slow node, under the RPC timeout (10 s).
    const READ_MS = 8_000;
    proxy.setDelay(READ_MS);
    const attestor = createAttestor({
      common: ctx.common,
      pool: ctx.db.pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(ctx.common, (c) =>
        createEvmAdapter({ ...c, rpcUrls: [proxy.url] }, { common: ctx.common }),
      ),
    });
    const held = new AbortController();
    const readsBefore = proxy.calls("eth_getBalance");
    try {
      const ticking = attestor.tick(chain, { everyBlocks: 1 }, { signal: held.signal });
      const outcome = ticking.then(
        () => ({ code: "returned" }),
        (error: { code?: string }) => ({ code: error.code }),
      );
      await waitFor(
        "the tick to read the reserves",
        () => proxy.calls("eth_getBalance") > readsBefore,
        { timeoutMs: 30_000, everyMs: 20 },
      );
      const lostAt = performance.now();
      held.abort();
      const stopped = await outcome;
      const tookMs = performance.now() - lostAt;
      expect(stopped).toEqual({ code: "ATTEST_LOCK_LOST" });
      // Well before the read answers: the tick does not wait it out.
      expect(tookMs).toBeLessThan(READ_MS / 4);
    } finally {
      proxy.setDelay(0);
    }
    expect(await stored()).toEqual({ attestations: 0, requests: 0 });
  }, 60_000);

  it("a tick whose lock is lost while it reads the reserves stores nothing and requests nothing", async () => {
    proxy.setDelay(3_000); // the tick is still reading when its lock goes
    const readsBefore = proxy.calls("eth_getBalance");
    const role = await startRole();
    // The other reconciler: it takes the chain's lock once the first one's session ended.
    const other = await ctx.db.pool.connect();
    let otherHolds = false;
    try {
      await waitFor(
        "the tick to read the reserves",
        () => proxy.calls("eth_getBalance") > readsBefore,
        { timeoutMs: 30_000, everyMs: 20 },
      );
      const { rows } = await ctx.db.pool.query<{ ok: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND classid::bigint = $1 AND objid::bigint = $2
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [(ATTEST_LOCK >> 32n).toString(), (ATTEST_LOCK & 0xffff_ffffn).toString()],
      );
      expect(rows).toEqual([{ ok: true }]);
      otherHolds = await waitFor("the lock free for the other reconciler", async () => {
        const r = await other.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
          ATTEST_LOCK.toString(),
        ]);
        return r.rows[0]?.ok;
      });
      // The role stops once its tick is over (its read answered after the loss).
      await role.stop();
      expect(await stored()).toEqual({ attestations: 0, requests: 0 });
    } finally {
      proxy.setDelay(0);
      await role.stop();
      if (otherHolds) await other.query("SELECT pg_advisory_unlock($1)", [ATTEST_LOCK.toString()]);
      other.release();
    }

    // The same tick with its lock held attests the block (the loss above is what stopped it).
    const again = await startRole();
    try {
      await waitFor("the block attested", async () => (await stored()).requests > 0, {
        timeoutMs: 30_000,
      });
    } finally {
      await again.stop();
    }
    const { rows } = await ctx.db.pool.query<{ block_number: string; status: string }>(
      "SELECT block_number::text, status FROM attest.attestations WHERE chain_id = $1",
      [CHAIN_ID],
    );
    expect(rows).toEqual([{ block_number: String(block), status: "requested" }]);
    expect(await stored()).toEqual({ attestations: 1, requests: 1 });
  }, 120_000);
});
