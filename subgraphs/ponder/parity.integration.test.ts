/**
 * Parity on anvil: the service (indexer, worker, signer, api; KMS emulator, real Postgres, Redis) takes
 * native and token deposits, sweeps them, withdraws, moves token value above the hot ceiling to the
 * cold wallet, reconciles and attests; then the Ponder app, started as a real process on the same
 * chain, answers over GraphQL (and SQL over HTTP) exactly custody-node's own records, row for row:
 * booked sweep items (custody.sweep_items), ERC-20 facts touching the hot and cold wallets
 * (chain.transfers), confirmed attestations (attest.attestations) and the custody wallets.
 */

import { writeFileSync } from "node:fs";
import {
  type Address,
  createPublicClient,
  encodeFunctionData,
  getAddress,
  getContractAddress,
  type Hex,
  http,
  type PublicClient,
  parseEther,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testToken } from "../../chains/contracts/index.js";
import { adapterPerChain } from "../../chains/index.js";
import { withTransaction } from "../../foundation/db.js";
import { allocateDepositAddress, notifyWatchedAddress } from "../../indexers/index.js";
import { createAttestor } from "../../ledger/attest/attest.js";
import { createReconciler } from "../../ledger/recon/reconcile.js";
import {
  fundAndDeployAttestor,
  waitFinalInIndex,
} from "../../ledger/recon/testing/attestedCustody.js";
import { runScenario } from "../../ops/e2e/scenario.js";
import { prepareTestCustody } from "../../ops/e2e/setup.js";
import { type Service, startService } from "../../ops/start.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../ops/testing/context.js";
import { waitFor } from "../../ops/testing/wait.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type PonderProcess, startPonder } from "../testing/ponder.js";
import { deploymentFromDatabase } from "./fromDatabase.js";

/** anvil dev account 9 deploys the test token at nonce 0 before anything else, so its address is known. */
const TOKEN_DEPLOYER: Address = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720";
const TOKEN = getContractAddress({ from: TOKEN_DEPLOYER, nonce: 0n });
/** An address no one holds a key to in this test: the chain's cold wallet. */
const COLD: Address = "0x00000000000000000000000000000000000c01D0";
const CARGO = parseEther("50");
const HOT_CEILING = parseEther("10");

/** The README's examples ("dApp queries"): the latest native attestation, and every wallet flow. */
const README_QUERIES = {
  latestAttestation: `{
  attestations(
    where: { asset: "0x0000000000000000000000000000000000000000" }
    orderBy: "block", orderDirection: "desc", limit: 1
  ) {
    items { asset block reserves liabilities liabilitiesRoot addressesRoot reportHash transactionHash }
  }
}`,
  walletFlows: `{
  walletTransfers(orderBy: "blockNumber", orderDirection: "asc") {
    totalCount
    items { token from to amount fromKind toKind blockNumber }
  }
}`,
};

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;
let ponder: PonderProcess | undefined;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        key: "local-a",
        config: {
          confirmations: { kind: "blocks", blocks: 2 },
          traces: true,
          coldAddress: COLD,
          nativeSweepThreshold: "1",
          sweepIntervalMs: 500,
          tokens: [
            {
              address: TOKEN,
              symbol: "TT",
              decimals: 18,
              sweepThreshold: "1",
              hotCeiling: HOT_CEILING.toString(),
            },
          ],
        } as unknown as NonNullable<TestChainSpec["config"]>,
      },
    ],
  });
  kms = await startKmsEmulator();
});
afterAll(async () => {
  await ponder?.stop();
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
});

const lower = (v: string) => v.toLowerCase();

describe("Ponder parity with custody-node's own records", () => {
  it("sweeps, hot/cold wallet transfers, attestations and wallets agree row for row", async () => {
    const chain = ctx.config.chains[0]!;
    const pool = ctx.db.pool;
    const client = createPublicClient({
      cacheTime: 0,
      transport: http(chain.rpcUrls[0]),
    }) as PublicClient;
    const rpc = <T>(method: string, params: unknown[] = []) =>
      client.request({ method: method as never, params: params as never }) as Promise<T>;
    const mine = () => rpc("evm_mine");
    const send = async (from: Address, to: Address | undefined, data: Hex) => {
      const hash = await rpc<Hex>("eth_sendTransaction", [{ from, ...(to ? { to } : {}), data }]);
      const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 100 });
      if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted`);
      return receipt;
    };

    // 1. The listed token, the custody (KMS hot wallet, factory), its float booked, the attestor.
    const deployed = await send(TOKEN_DEPLOYER, undefined, testToken.bytecode);
    expect(getAddress(deployed.contractAddress!)).toBe(TOKEN);
    const prepared = await prepareTestCustody(ctx, kms);
    const hot = lower(prepared.hotWallet);
    // The cold wallet is a custody address (its balance is part of the reserves reconciliation and
    // the attestation count), registered as the operator does for the hot wallet.
    await withTransaction(pool, async (c) => {
      await c.query(
        `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
         VALUES ($1, $2, 'cold', $3)`,
        [chain.chainId, lower(COLD), `cold:${chain.key}`],
      );
      await notifyWatchedAddress(c, chain.chainId);
    });
    await fundAndDeployAttestor({
      common: ctx.common,
      pool,
      chain,
      client,
      kmsEndpoint: kms.url,
      prepared,
    });

    // 2. The service: native deposits (swept), withdrawals; a token deposit, swept, and the
    //    excess above the hot ceiling moved to cold.
    // No reconciler role: the test reconciles and attests itself, at a block it chooses.
    service = await startService(prepared.config, {
      roles: ["indexer", "worker", "signer", "api"],
    });
    await runScenario({
      url: service.url,
      pool,
      chain,
      hotWallet: prepared.hotWallet,
      tick: async () => {
        await mine();
      },
      timeoutMs: 90_000,
    });
    const carol = await allocateDepositAddress(
      { common: ctx.common, pool },
      { chainId: chain.chainId, customerId: "carol" },
    );
    await send(
      TOKEN_DEPLOYER,
      TOKEN,
      encodeFunctionData({
        abi: testToken.abi,
        functionName: "mint",
        args: [carol.address, CARGO],
      }),
    );
    const settled = async () => {
      const r = await pool.query<{ open: number; swept: bigint | null; cold: number }>(
        `SELECT (SELECT count(*)::int FROM custody.sweeps WHERE status = 'open') AS open,
                (SELECT sum(i.swept) FROM custody.sweep_items i
                   JOIN custody.sweeps s ON s.id = i.sweep_id
                  WHERE s.status = 'booked' AND i.asset = $1) AS swept,
                (SELECT count(*)::int FROM custody.cold_moves WHERE status = 'booked' AND asset = $1) AS cold`,
        [lower(TOKEN)],
      );
      return r.rows[0]!;
    };
    await waitFor(
      "the token deposit swept and the excess moved to cold (both booked)",
      async () => {
        await mine();
        const s = await settled();
        return s.open === 0 && s.swept === CARGO && s.cold >= 1;
      },
      { timeoutMs: 120_000, everyMs: 250 },
    );
    const nativeSwept = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
        WHERE s.status = 'booked' AND i.asset = '0x0000000000000000000000000000000000000000' AND i.swept > 0`,
    );
    expect(nativeSwept.rows[0]!.n).toBeGreaterThanOrEqual(1);

    // 3. Reconcile at a final block, attest it, and let the attestation confirm.
    const head = Number(await client.getBlockNumber());
    await waitFinalInIndex({ pool, chain, block: head, mine });
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
    }).run({
      chain,
      block: head,
      full: true,
    });
    expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
    const attestor = createAttestor({
      common: ctx.common,
      pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(ctx.common),
    });
    const tick = await attestor.tick(chain, { everyBlocks: 1 });
    expect(tick.attested.map((a) => lower(a.token)).sort()).toEqual(
      ["0x0000000000000000000000000000000000000000", lower(TOKEN)].sort(),
    );
    await waitFor(
      "both attestations confirmed",
      async () => {
        await mine();
        await attestor.settle(chain);
        const r = await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM attest.attestations WHERE status = 'confirmed'",
        );
        return r.rows[0]!.n === 2;
      },
      { timeoutMs: 60_000, everyMs: 250 },
    );

    // 4. The Ponder app on the same chain, from the custody's own deployment records.
    const deployment = await deploymentFromDatabase(pool, chain, { pollingIntervalMs: 200 });
    expect(deployment.hotWallets).toEqual([hot]);
    ponder = await startPonder({ deployment, databaseUrl: ctx.db.url, schema: "ponder_parity" });
    const last = Number(await client.getBlockNumber());
    await waitFor(
      `Ponder indexed to block ${last}`,
      async () => (await ponder!.indexedBlock()) >= last,
      { timeoutMs: 60_000, everyMs: 250 },
    );

    // 5. Row for row. Custody-node's side first, then Ponder's GraphQL. (A `::text` inside a `||`
    // builds the text row in SQL; no NUMERIC column reaches the reader.)
    const custodySweeps = (
      await pool.query<{ row: string }>(
        `SELECT s.tx_hash || '|' || s.factory || '|' || i.salt || '|' || i.address || '|' || i.asset
                || '|' || i.swept::text AS row
           FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
          WHERE s.status = 'booked' AND i.swept > 0`,
      )
    ).rows
      .map((r) => r.row)
      .sort();
    const custodyWallets = (
      await pool.query<{ address: string; kind: string }>(
        "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND kind IN ('hot', 'cold')",
        [chain.chainId],
      )
    ).rows;
    const wallets = custodyWallets.map((w) => w.address);
    const kindOf = new Map(custodyWallets.map((w) => [w.address, w.kind]));
    const kind = (a: string) => kindOf.get(a) ?? "";
    const custodyTransfers = (
      await pool.query<{
        tx_hash: string;
        log_index: number;
        asset: string;
        from_address: string;
        to_address: string;
        amount: bigint;
      }>(
        `SELECT tx_hash, log_index, asset, from_address, to_address, amount
           FROM chain.transfers
          WHERE chain_id = $1 AND kind = 'erc20' AND status <> 'orphaned' AND block_number >= $2
            AND (from_address = ANY($3) OR to_address = ANY($3))`,
        [chain.chainId, deployment.startBlock, wallets],
      )
    ).rows
      .map(
        (t) =>
          `${t.tx_hash}|${t.log_index}|${t.asset}|${t.from_address}|${t.to_address}|${t.amount}|${kind(t.from_address)}|${kind(t.to_address)}`,
      )
      .sort();
    const custodyAttestations = (
      await pool.query<{ row: string }>(
        `SELECT tx_hash || '|' || lower(contract) || '|' || token || '|' || block_number::text || '|'
                || reserves::text || '|' || liabilities::text || '|' || liabilities_root || '|'
                || addresses_root || '|' || report_hash AS row
           FROM attest.attestations WHERE chain_id = $1 AND status = 'confirmed'`,
        [chain.chainId],
      )
    ).rows
      .map((r) => r.row)
      .sort();

    const answers = await ponder.graphql<{
      sweeps: { totalCount: number; items: Record<string, string | number>[] };
      walletTransfers: { totalCount: number; items: Record<string, string | number | null>[] };
      attestations: { totalCount: number; items: Record<string, string | number>[] };
      custodyWallets: { items: { address: string; kind: string; chainId: number }[] };
    }>(`{
      sweeps(limit: 1000) { totalCount items { id chainId factory salt depositAddress token amount blockNumber timestamp transactionHash logIndex } }
      walletTransfers(limit: 1000) { totalCount items { id chainId token from to amount fromKind toKind blockNumber timestamp transactionHash logIndex } }
      attestations(limit: 1000) { totalCount items { id chainId contract asset block reserves liabilities liabilitiesRoot addressesRoot reportHash blockNumber timestamp transactionHash logIndex } }
      custodyWallets(limit: 1000) { items { address kind chainId } }
    }`);

    const ponderSweeps = answers.sweeps.items
      .map(
        (s) =>
          `${s.transactionHash}|${s.factory}|${s.salt}|${s.depositAddress}|${s.token}|${s.amount}`,
      )
      .sort();
    const ponderTransfers = answers.walletTransfers.items
      .map(
        (t) =>
          `${t.transactionHash}|${t.logIndex}|${t.token}|${t.from}|${t.to}|${t.amount}|${t.fromKind ?? ""}|${t.toKind ?? ""}`,
      )
      .sort();
    const ponderAttestations = answers.attestations.items
      .map(
        (a) =>
          `${a.transactionHash}|${a.contract}|${a.asset}|${a.block}|${a.reserves}|${a.liabilities}|${a.liabilitiesRoot}|${a.addressesRoot}|${a.reportHash}`,
      )
      .sort();

    // what was exercised: native and token sweeps, a transfer into hot and one from hot to cold,
    // one attestation per asset
    expect(custodySweeps.length).toBeGreaterThanOrEqual(3);
    expect(custodySweeps.some((s) => s.includes(`|${lower(TOKEN)}|${CARGO}`))).toBe(true);
    expect(custodyTransfers.some((t) => t.endsWith("||hot"))).toBe(true);
    expect(custodyTransfers.some((t) => t.endsWith("|hot|cold"))).toBe(true);
    expect(custodyAttestations).toHaveLength(2);

    expect(ponderSweeps).toEqual(custodySweeps);
    expect(ponderTransfers).toEqual(custodyTransfers);
    expect(ponderAttestations).toEqual(custodyAttestations);
    expect(answers.sweeps.totalCount).toBe(custodySweeps.length);
    expect(answers.walletTransfers.totalCount).toBe(custodyTransfers.length);
    expect(answers.attestations.totalCount).toBe(2);
    expect(
      answers.custodyWallets.items.map((w) => `${w.chainId}|${w.address}|${w.kind}`).sort(),
    ).toEqual(custodyWallets.map((w) => `${chain.chainId}|${w.address}|${w.kind}`).sort());
    expect(custodyWallets).toHaveLength(2);
    for (const row of [...answers.sweeps.items, ...answers.walletTransfers.items])
      expect(row.id).toBe(`${row.transactionHash}-${row.logIndex}`);

    // SQL over HTTP (@ponder/client's endpoint) reads the same tables (Ponder's own connection,
    // not our pool: its `::text` stays).
    const sql = encodeURIComponent(
      JSON.stringify({
        json: {
          sql: "select count(*)::int as n, coalesce(sum(amount), 0)::text as total from wallet_transfer",
          params: [],
          typings: [],
        },
      }),
    );
    const res = await fetch(`${ponder.url}/sql/db?sql=${sql}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rows: { n: number; total: string }[] };
    expect(body.rows).toEqual([
      {
        n: custodyTransfers.length,
        total: custodyTransfers.reduce((sum, t) => sum + BigInt(t.split("|")[5]!), 0n).toString(),
      },
    ]);

    // The README's two example queries ("dApp queries"), answered here; PARITY_ANSWERS=<file>
    // writes the answers of a real run for the README.
    const latest = await ponder.graphql<{
      attestations: { items: Record<string, string>[] };
    }>(README_QUERIES.latestAttestation);
    expect(latest.attestations.items).toHaveLength(1);
    const native = latest.attestations.items[0]!;
    expect(custodyAttestations.filter((a) => a.startsWith(`${native.transactionHash}|`))).toEqual([
      `${native.transactionHash}|${answers.attestations.items[0]!.contract}|${native.asset}|${native.block}|${native.reserves}|${native.liabilities}|${native.liabilitiesRoot}|${native.addressesRoot}|${native.reportHash}`,
    ]);
    const flows = await ponder.graphql<{
      walletTransfers: { totalCount: number; items: Record<string, string | null>[] };
    }>(README_QUERIES.walletFlows);
    expect(flows.walletTransfers.totalCount).toBe(custodyTransfers.length);
    expect(flows.walletTransfers.items.map((t) => `${t.fromKind ?? ""}>${t.toKind ?? ""}`)).toEqual(
      [">hot", "hot>cold"],
    );
    if (process.env.PARITY_ANSWERS)
      writeFileSync(
        process.env.PARITY_ANSWERS,
        JSON.stringify(
          { url: ponder.url, token: TOKEN, cold: COLD, hot, answers, latest, flows },
          null,
          2,
        ),
      );
  }, 600_000);
});
