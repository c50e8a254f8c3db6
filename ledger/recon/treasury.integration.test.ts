/**
 * Acceptance (issue 14, items 3 and 4) on anvil with the real indexer, ledger, API and CLI:
 * a fresh deployment — hot wallet funded by a real transaction and booked with `treasury fund`,
 * the factory deployed (its gas booked by the deploy itself), a deposit credited, a withdrawal sent
 * and booked — reconciles with 0 breaks through `custody-node reconcile` (exit 0). Then breaks are
 * worked to closure: an unbooked defund shows as open breaks, acknowledged through the API and the
 * CLI stops alerting (metrics and log level), booked through the admin API, and resolved linked to
 * the booking; an acknowledged balance break whose amount changes alerts again.
 */

import { randomBytes, randomUUID } from "node:crypto";
import {
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type PublicClient,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../../api/testing/apiTestContext.js";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { type ChainCli, chainCli } from "../../ops/testing/process.js";
import { deployForwarderFactory } from "../../signer/deposit-addresses/index.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../depositCrediting.js";
import { transferId } from "../transferId.js";
import { treasuryTransferId } from "../treasury.js";
import { createReconciler, type Reconciler } from "./reconcile.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E18 = 10n ** 18n;
const D_ALICE = freshAddress(401);
const OUTSIDER = freshAddress(499);

let t: ApiTestContext;
let rpc: Rpc;
let chain: ChainConfig;
let operator: Hex;
let customer: Hex;
const hotAccount = privateKeyToAccount(toHex(randomBytes(32)));
const hot = hotAccount.address.toLowerCase() as Hex;
let client: PublicClient;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let reconciler: Reconciler;
let operatorCli: ChainCli;

const cli = (args: string[]) => operatorCli.run(args);
const sync = () => syncToHead(ingestor, t.ctx.db.pool, rpc, CHAIN_ID);
async function settle() {
  for (let i = 0; i < 3; i++) await rpc("evm_mine");
  await sync();
  await crediting.sweep({ chainId: CHAIN_ID });
}
/** A transaction from the hot wallet, signed by its key (as the signer would) and mined. */
async function sendFromHot(to: Hex, value: bigint) {
  const wallet = createWalletClient({ account: hotAccount, transport: http(chain.rpcUrls[0]) });
  const hash = await wallet.sendTransaction({ to, value, chain: null });
  const r = await client.waitForTransactionReceipt({ hash, pollingInterval: 50, timeout: 30_000 });
  return { hash: hash.toLowerCase() as Hex, fee: r.gasUsed * r.effectiveGasPrice };
}
const gauge = async (name: string, labels: Record<string, string>) => {
  const m = await t.ctx.common.metrics.registry.getSingleMetric(name)?.get();
  return (
    m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0
  );
};
const post = (key: string, url: string, payload: unknown) =>
  t.call(key, {
    method: "POST",
    url,
    payload: payload as Record<string, unknown>,
    headers: { "idempotency-key": randomUUID() },
  });

beforeAll(async () => {
  t = await createApiTestContext({
    chains: [{ chainId: CHAIN_ID, config: { confirmations: { kind: "blocks", blocks: 2 } } }],
  });
  rpc = anvilRpc(t.ctx.anvils[0]!.rpcUrl);
  const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
  operator = accounts[0]!;
  customer = accounts[1]!;
  chain = t.ctx.config.chains[0]!;
  client = createPublicClient({ cacheTime: 0, transport: http(chain.rpcUrls[0]) }) as PublicClient;
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  crediting = createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
  operatorCli = chainCli({ databaseUrl: t.ctx.db.url, chain, entry: { traces: true } });
});

afterAll(async () => {
  await ingestor?.stop();
  await ledger?.close();
  await t?.cleanup();
  operatorCli?.remove();
});

describe("treasury bookings and breaks worked to closure", () => {
  let fundTx: Hex;

  it("a fresh deployment (fund, deploy, deposit, withdraw) reconciles with 0 breaks", async () => {
    // The operator funds the hot wallet with a real transaction (a chain fact), then deploys.
    fundTx = (
      await sendAndMine(rpc, { from: operator, to: hot, value: 10n * E18 })
    ).transactionHash.toLowerCase() as Hex;
    const deployed = await deployForwarderFactory({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chain,
      client,
      account: hotAccount,
      sendRawTransaction: (raw) =>
        client.request({ method: "eth_sendRawTransaction", params: [raw] }),
    });
    const deployTx = deployed.contract.deployTxHash.toLowerCase();
    const deployReceipt = await client.getTransactionReceipt({ hash: deployTx as Hex });
    const gas = await ledger.getTransfer(treasuryTransferId("gas", CHAIN_ID, deployTx, "fee"));
    expect(gas).toMatchObject({
      kind: "fee",
      amount: deployReceipt.gasUsed * deployReceipt.effectiveGasPrice,
      chainRef: { chainId: CHAIN_ID, txHash: deployTx, position: "fee" },
    });

    await watch(t.ctx.db.pool, CHAIN_ID, [{ address: D_ALICE, owner: "alice" }]);
    await sendAndMine(rpc, { from: customer, to: D_ALICE, value: 1n * E18 });
    const adapter = createEvmAdapter(chain, { common: t.ctx.common });
    ingestor = await createIngestor({ common: t.ctx.common, pool: t.ctx.db.pool, adapter });
    reconciler = createReconciler({
      sweeps: sweepReader,
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chains: adapterPerChain(t.ctx.common, () => adapter),
    });
    await settle();

    // Before the funding is booked, reconciliation says what is missing.
    const before = await reconciler.run({ chain });
    expect(before.breaks.map((b) => `${b.type} ${b.key}`)).toEqual([`missing_credit ${fundTx}:tx`]);

    const fund = ["treasury", "fund", "--chain", chain.key, "--tx", fundTx, "--wallet", hot];
    const booked = await cli([...fund, "--by", "ops-anna", "--reason", "initial float"]);
    expect(booked.out).toContain(`booked treasury ${10n * E18}`);
    expect(booked.code).toBe(0);
    // Idempotent: the same tx books nothing more; a different amount is refused.
    const again = await cli([...fund, "--by", "ops-anna", "--reason", "initial float"]);
    expect([again.code, again.out]).toEqual([0, expect.stringContaining("already booked")]);
    const wrong = await cli([...fund, "--amount", "5", "--by", "ops-anna", "--reason", "x"]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/TREASURY_MOVE_REFUSED|says 10000000000000000000, not 5/);

    // A withdrawal as the pipeline books it: hold, send from the hot wallet, post, book the fee.
    const holdId = transferId("withdrawal:treasury-w1");
    await ledger.hold({
      id: holdId,
      assetId: ETH,
      debit: "user:alice",
      credit: `custody:hot:${hot}`,
      amount: 3n * 10n ** 17n,
      kind: "withdrawal",
    });
    const w = await sendFromHot(OUTSIDER, 3n * 10n ** 17n);
    await ledger.postPending({
      id: transferId("withdrawal-post:treasury-w1"),
      pendingId: holdId,
      chainRef: { chainId: CHAIN_ID, txHash: w.hash, position: "tx" },
    });
    await ledger.transfer({
      id: transferId("withdrawal-fee:treasury-w1"),
      assetId: ETH,
      debit: "fees:gas",
      credit: `custody:hot:${hot}`,
      amount: w.fee,
      kind: "fee",
      chainRef: { chainId: CHAIN_ID, txHash: w.hash, position: "fee" },
    });
    await settle();

    const run = await cli(["reconcile", "--chain", chain.key]);
    expect(run.out).toMatch(/^No breaks/);
    expect(run.out).toMatch(/audit log head: seq [0-9]+ [0-9a-f]{64}/);
    expect(run.code).toBe(0);
    const audit = await t.ctx.db.pool.query<{ actor: string; action: string }>(
      "SELECT actor, action FROM audit.audit_log WHERE entity_type = 'treasury' ORDER BY seq",
    );
    expect(audit.rows).toEqual([
      { actor: "contracts deploy", action: "treasury.gas" },
      { actor: "ops-anna", action: "treasury.fund" },
    ]);
    const verify = await cli(["audit", "verify"]);
    expect([verify.code, verify.out]).toEqual([
      0,
      expect.stringMatching(/intact: 2 row\(s\).*2 recorded head/),
    ]);
  });

  it("works breaks to closure: open → acknowledged (no alert) → booked and resolved", async () => {
    // The operator takes 1 ETH back without booking it: the value and its gas are breaks.
    const d = await sendFromHot(operator, 1n * E18);
    await settle();
    const first = await reconciler.run({ chain });
    expect(first.breaks.map((b) => `${b.type} ${b.key} ${b.state}`).sort()).toEqual([
      `fee_not_booked ${d.hash}:fee open`,
      `unmatched_withdrawal ${d.hash}:tx open`,
    ]);
    expect(first.alerting).toBe(2);
    expect(await gauge("custody_recon_breaks", { type: "fee_not_booked" })).toBe(1);

    const listed = await t.call(t.keys["recon:read"], { method: "GET", url: "/v1/recon/breaks" });
    expect(listed.statusCode).toBe(200);
    const open = listed.json().breaks as {
      type: string;
      state: string;
      latestBreakId: string;
      identity: string;
    }[];
    expect(open.map((b) => `${b.type} ${b.state}`).sort()).toEqual([
      "fee_not_booked open",
      "unmatched_withdrawal open",
    ]);
    const value = open.find((b) => b.type === "unmatched_withdrawal")!;
    const fee = open.find((b) => b.type === "fee_not_booked")!;
    // recon:read may list but not acknowledge.
    const denied = await post(
      t.keys["recon:read"],
      `/v1/recon/breaks/${encodeURIComponent(value.identity)}/acknowledge`,
      {
        reason: "x",
      },
    );
    expect(denied.statusCode).toBe(403);
    const acked = await post(
      t.keys.admin,
      `/v1/recon/breaks/${encodeURIComponent(value.identity)}/acknowledge`,
      {
        reason: "operator defund, booking today",
      },
    );
    expect(acked.statusCode).toBe(200);
    expect(acked.json()).toMatchObject({ state: "acknowledged", acknowledgedBy: "owner-admin" });
    const ack = await cli([
      "recon",
      "breaks",
      "ack",
      fee.latestBreakId,
      "--by",
      "ops-ben",
      "--reason",
      "gas of the defund",
    ]);
    expect([ack.code, ack.out]).toEqual([0, expect.stringContaining("acknowledged by ops-ben")]);

    // The next run finds both again, at the same amounts: no alert.
    const runsBefore = await gauge("custody_recon_runs_total", { result: "breaks" });
    const second = await reconciler.run({ chain });
    expect(second.breaks.map((b) => b.state)).toEqual(["acknowledged", "acknowledged"]);
    expect(second.alerting).toBe(0);
    expect(await gauge("custody_recon_breaks", { type: "fee_not_booked" })).toBe(0);
    expect(await gauge("custody_recon_breaks_acknowledged", { type: "fee_not_booked" })).toBe(1);
    expect(await gauge("custody_recon_runs_total", { result: "breaks" })).toBe(runsBefore);
    expect(await gauge("custody_recon_runs_total", { result: "acknowledged" })).toBe(1);
    const report = await cli(["reconcile", "--run", String(second.runId), "--format", "csv"]);
    expect(report.out).toContain("acknowledged by ops-ben: gas of the defund");
    // Nor does the CLI alert scripts: exit 0, the breaks listed as acknowledged.
    const quiet = await cli(["reconcile", "--chain", chain.key]);
    expect([quiet.code, quiet.out]).toEqual([0, expect.stringContaining("(2 acknowledged)")]);

    // An acknowledged break whose amount changes alerts again.
    const balance = await client.getBalance({ address: hotAccount.address });
    await rpc("anvil_setBalance", [hot, toHex(balance + 7n)]);
    await settle();
    const drift = await reconciler.run({ chain });
    const unexplained = drift.breaks.find((b) => b.type === "unexplained_balance_difference")!;
    expect([unexplained.difference, unexplained.state]).toEqual([-7n, "open"]);
    const id = `${drift.runId}:${drift.breaks.indexOf(unexplained)}`;
    expect(
      (await cli(["recon", "breaks", "ack", id, "--by", "ops-anna", "--reason", "checking"])).code,
    ).toBe(0);
    await rpc("anvil_setBalance", [hot, toHex(balance + 9n)]);
    await settle();
    const changed = await reconciler.run({ chain });
    expect(changed.breaks.find((b) => b.type === "unexplained_balance_difference")).toMatchObject({
      difference: -9n,
      state: "open",
    });
    expect(changed.alerting).toBe(1);
    await rpc("anvil_setBalance", [hot, toHex(balance)]);
    await settle();

    // Booked through the admin API (amounts from the indexed facts), then resolved, linked to it.
    const defund = {
      move: "defund",
      chain: chain.key,
      txHash: d.hash,
      wallet: hotAccount.address,
      reason: "operator took 1 ETH back",
    };
    expect((await post(t.keys["recon:read"], "/v1/treasury/moves", defund)).statusCode).toBe(403);
    const unknown = await post(t.keys.admin, "/v1/treasury/moves", { ...defund, chain: "nope" });
    expect([unknown.statusCode, unknown.json().code]).toEqual([422, "TREASURY_MOVE_REFUSED"]);
    const move = await post(t.keys.admin, "/v1/treasury/moves", defund);
    expect(move.statusCode).toBe(200);
    expect(
      move.json().transfers.map((x: { kind: string; amount: string }) => `${x.kind} ${x.amount}`),
    ).toEqual([`treasury ${1n * E18}`, `fee ${d.fee}`]);
    const bookedId = move.json().transfers[0].id as string;
    const noLink = await cli([
      "recon",
      "breaks",
      "resolve",
      value.identity,
      "--by",
      "ops-anna",
      "--reason",
      "booked",
      "--fixed-by",
      randomUUID(),
    ]);
    expect(noLink.code).not.toBe(0);
    const resolved = await cli([
      "recon",
      "breaks",
      "resolve",
      value.identity,
      "--by",
      "ops-anna",
      "--reason",
      "booked",
      "--fixed-by",
      bookedId,
    ]);
    expect([resolved.code, resolved.out]).toEqual([
      0,
      expect.stringContaining(`transfer:${bookedId}`),
    ]);
    const viaApi = await post(
      t.keys.admin,
      `/v1/recon/breaks/${encodeURIComponent(fee.identity)}/resolve`,
      {
        reason: "gas booked",
        fixedBy: `${d.hash}:fee`,
      },
    );
    expect(viaApi.json()).toMatchObject({ state: "resolved", resolvedRef: `fact:${d.hash}:fee` });
    // A resolved break cannot be acknowledged: a state conflict (409), not bad input.
    const conflict = await post(
      t.keys.admin,
      `/v1/recon/breaks/${encodeURIComponent(fee.identity)}/acknowledge`,
      { reason: "too late" },
    );
    expect([conflict.statusCode, conflict.json().code]).toEqual([409, "RECON_BREAK_STATE"]);
    expect(conflict.headers["content-type"]).toMatch(/^application\/problem\+json/);

    const clean = await reconciler.run({ chain });
    expect(clean.breaks).toEqual([]);
    const states = await t.call(t.keys["recon:read"], {
      method: "GET",
      url: "/v1/recon/breaks?state=resolved",
    });
    expect(
      (states.json().breaks as { type: string; resolvedBy: string }[])
        .map((b) => `${b.type} ${b.resolvedBy}`)
        .sort(),
    ).toEqual([
      "fee_not_booked owner-admin",
      // the first run's unbooked funding, gone once `treasury fund` booked it
      "missing_credit reconciler",
      "unexplained_balance_difference reconciler",
      "unmatched_withdrawal ops-anna",
    ]);
    const final = await cli(["reconcile", "--chain", chain.key]);
    expect([final.code, final.out]).toEqual([0, expect.stringMatching(/^No breaks/)]);
    const verify = await cli(["audit", "verify"]);
    expect(verify.code).toBe(0);
  });
});
