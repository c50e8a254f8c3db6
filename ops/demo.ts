/**
 * `npm run demo`: the whole system on this machine. Starts the local stack (anvil chains,
 * Postgres, Redis) into a fresh demo database and a local KMS emulator, creates the hot wallet key
 * and deploys the deposit-address factory from it, starts the service with every role and shows it
 * healthy; then, through the API: API keys, deposit addresses, deposits from anvil accounts until
 * credited, a withdrawal under the approval threshold, one approved by two operators, one
 * rejected; waits for the chain to confirm and prints both sides' balances. Stops everything and
 * exits 0.
 */

import pg from "pg";
import { parseEther } from "viem";
import {
  adapterPerChain,
  type ChainConfig,
  chainSchema,
  publicClientFor,
} from "../chains/index.js";
import { createCommon } from "../foundation/common.js";
import { loadConfig } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import { ConfigError } from "../foundation/errors.js";
import { ROLE_NAMES } from "../foundation/roles.js";
import { bookTreasuryMove, createLedger } from "../ledger/index.js";
import { createReconciler, withChainRunLock } from "../ledger/recon/index.js";
import { startKmsEmulator } from "../signer/kms-emulator/server.js";
import { signerTransactions } from "../signer/requests.js";
import { sweepReader } from "../signer/sweeps/sweepReads.js";
import { type PreparedCustody, prepareCustody } from "./devstack/custody.js";
import { demoPolicies, runScenario } from "./devstack/scenario.js";
import { ensureDatabase, ensurePostgres } from "./devstack/services.js";
import { startDevStack } from "./devstack/stack.js";
import { proofOfReservesDemo } from "./por/demo.js";
import { startService } from "./start.js";

const say = (msg: string) => console.log(`[demo] ${msg}`);

async function recreateDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = u.pathname.slice(1);
  u.pathname = "/postgres";
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
  await ensureDatabase(url);
}

/** What `custody-node treasury fund` does, for the funding prepareCustody sent. */
async function bookDemoFunding(
  config: ReturnType<typeof loadConfig>,
  chain: ChainConfig,
  prepared: PreparedCustody,
): Promise<void> {
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 2 });
  const ledger = createLedger({ common, pool });
  try {
    await bookTreasuryMove(
      { common, pool, ledger, signerTransactions },
      {
        move: "fund",
        chainId: chain.chainId,
        txHash: prepared.fundTxHash,
        wallet: prepared.hotWallet,
        amount: parseEther("100"),
        by: "demo",
        reason: "hot wallet float",
      },
    );
  } finally {
    await ledger.close();
    await pool.end();
  }
}

/** `custody-node reconcile` at the newest final block, once the indexer has reached it. */
async function reconcileDemo(config: ReturnType<typeof loadConfig>, chain: ChainConfig) {
  const common = createCommon(config);
  // Three: the chain's run lock, the run's completion transaction, its audit-head read.
  const pool = createPool(config.env.DATABASE_URL, { max: 3 });
  try {
    const client = publicClientFor(chain.rpcUrls[0]!);
    const head = Number(await client.getBlockNumber());
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common,
      pool,
      chains: adapterPerChain(common),
    });
    const deadline = Date.now() + 60_000;
    // Everything the scenario did is at or below `head`: wait until that block is final.
    for (;;) {
      const final = await reconciler.finalBlock(chain).catch(() => -1);
      if (final >= head) break;
      if (Date.now() > deadline) throw new Error(`block ${head} not final within 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Under the chain's run lock, as the CLI (the service's reconciler role runs beside it).
    const run = await withChainRunLock(pool, chain, (held) =>
      reconciler.run({ chain, block: head, signal: held }),
    );
    for (const b of run.breaks) say(`  break ${b.type} ${b.key}: ${b.action}`);
    return run.breaks.length;
  } finally {
    await pool.end();
  }
}

async function main() {
  const env = {
    DATABASE_URL: "postgres://postgres@127.0.0.1:5432/custody_demo",
    REDIS_PREFIX: "custody-demo",
    LOG_LEVEL: "warn",
    PORT: "0",
    ...process.env,
  };
  const config = loadConfig(chainSchema, env);
  await ensurePostgres(config.env.DATABASE_URL, say);
  say(`using a fresh database ${new URL(config.env.DATABASE_URL).pathname.slice(1)}`);
  await recreateDatabase(config.env.DATABASE_URL);
  const stack = await startDevStack(config, say);
  const kms = await startKmsEmulator();
  say(`KMS emulator on ${kms.url} (dev only: real deployments use AWS KMS)`);
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  const stopAll = async () => {
    await service?.stop();
    await kms.stop();
    await stack.stop();
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
  process.once("SIGTERM", () => void stopAll().then(() => process.exit(143)));
  try {
    const chain = config.chains[0]!;
    const setupPool = createPool(config.env.DATABASE_URL, { max: 2 });
    const prepared = await prepareCustody({
      common: createCommon(config),
      pool: setupPool,
      chain,
      kmsEndpoint: kms.url,
      // Every served chain's: one without a policy has its withdrawals refused (and a warning).
      policies: demoPolicies(...config.chains.map((c) => c.chainId)),
    }).finally(() => setupPool.end());
    say(
      `hot wallet ${prepared.hotWallet} (KMS key ${prepared.keyId.slice(0, 8)}…), deposit-address factory deployed on ${chain.key} (its gas booked)`,
    );
    await bookDemoFunding(config, chain, prepared);
    say(
      `treasury: hot wallet funding ${prepared.fundTxHash.slice(0, 10)}… booked (custody-node treasury fund)`,
    );
    say("policy: withdrawals above 1 ETH need 2 distinct approvers; 10 ETH per tx, 20 ETH per 24h");

    service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
    // 200 says `status: "ready"`; a 503 is a problem whose `code` says why (SERVICE_NOT_READY).
    // Asked until ready, for up to 30 s, as a load balancer's health check would: a role finishes
    // some of its start after `start` returns (the signer loads its KMS key in the background), and
    // one read at once failed now and then on a loaded machine ("signer: FAILING").
    const readyBy = Date.now() + 30_000;
    let ready: Response;
    let body: { status: string | number; code?: string; checks: Record<string, { ok: boolean }> };
    for (;;) {
      ready = await fetch(`${service.url}/readyz`);
      body = (await ready.json()) as typeof body;
      if (ready.ok || Date.now() > readyBy) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    say(`service at ${service.url}: ${body.code ?? body.status} (API docs at ${service.url}/docs)`);
    for (const [name, check] of Object.entries(body.checks))
      say(`  ${name}: ${check.ok ? "ok" : "FAILING"}`);
    if (!ready.ok) throw new Error("service is not ready");

    const pool = createPool(config.env.DATABASE_URL, { max: 2 });
    try {
      await runScenario({
        url: service.url,
        pool,
        chain,
        hotWallet: prepared.hotWallet,
        say,
        timeoutMs: 120_000,
      });
      const breaks = await reconcileDemo(config, chain);
      say(`reconciliation: ${breaks} breaks`);
      if (breaks > 0)
        throw new Error("reconciliation found breaks (npx custody-node reconcile shows them)");
      // Proof of reserves: one attestation and one verified customer proof (ops/por/demo.ts).
      const running = service;
      service = undefined;
      service = await proofOfReservesDemo({
        config,
        chain,
        prepared,
        kmsUrl: kms.url,
        service: running,
        say,
      });
    } finally {
      await pool.end();
    }
    say("all good. To keep a local service up: `npx custody-node dev` (stack, KMS key, funded and");
    say("booked hot wallet, factory, an admin key printed once; every role until Ctrl-C), then");
    say("browse http://127.0.0.1:8080/docs (see README).");
    say(`runtime: Node ${process.version} (npm scripts use node_modules/.bin/node, see README)`);
  } finally {
    await stopAll();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(1);
  },
);
