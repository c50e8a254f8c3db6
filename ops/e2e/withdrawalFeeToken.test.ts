/**
 * A withdrawal of a listed token that takes a fee on transfer (PAXG-style; USDT has the switch),
 * through the whole service (every role) and its API on anvil with the KMS emulator. The hot wallet
 * sends the whole amount; the recipient's Transfer log carries the amount less the token's fee and
 * a second Transfer pays the fee to the token's collector. The signer found no Transfer of the
 * requested amount, recorded no transfer position, and the withdrawal, mined and paid out, never
 * left `signing`/`broadcast`, its hold standing for ever (WITHDRAWAL_OUTCOME_INCOMPLETE on every
 * pass); reconciliation showed both Transfers and the gas unbooked and the hot wallet's balance off.
 * It is followed to finalized like any other: the customer pays the whole amount (the recipient
 * receiving less is the token's rule), booked as one transfer per chain fact (the recipient's and
 * the fee's), so reconciliation at the final block pairs every fact with no break; a reorg reverses
 * both parts and they are booked again when the same bytes mine again. A payment mined before the
 * signer read a token's fee (migration 0111) is read again after the upgrade and booked; a token
 * whose logged Transfers fall short of the amount is booked too, and reconciliation names the gap.
 */

import { randomUUID } from "node:crypto";
import { type Abi, type Address, encodeFunctionData, getAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../api/apiKeys.js";
import type { ChainConfig } from "../../chains/index.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { anvilRpc, type Rpc, sendAndMine } from "../../indexers/testing/chain.js";
import { assetIdOf, bookTreasuryMove, createLedger, type Ledger } from "../../ledger/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { signerTransactions } from "../../signer/requests.js";
import { deployFeeToken, FEE_COLLECTOR, FEE_TOKEN } from "../../signer/sweeps/testing/feeToken.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";
import { BURN_COLLECTOR, BURN_TOKEN, deployBurningFeeToken } from "./burningFeeToken.js";
import { prepareTestCustody, reconcileAtFinal } from "./setup.js";

const DEST = getAddress("0x000000000000000000000000000000000000beef");
/** anvil dev account 3: mints the customer's deposit (anyone may mint the test token). */
const MINTER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906" as const;

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;
let ledger: Ledger;
let chain: ChainConfig;
let rpc: Rpc;
let abi: Abi;
let burnAbi: Abi;
let hot: Address;
let key: string;
let FEE: string;
let serviceConfig: Parameters<typeof startService>[0];

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        key: "local-a",
        config: {
          confirmations: { kind: "blocks", blocks: 2 },
          reorgWindow: 8,
          // The test mines a block per look (every 50 ms) until what it waits for is final; the
          // indexer polls once a block time (at least 100 ms), and at the default 1 s each wait
          // for a final block (reorgWindow blocks on) took seconds. No timer of the service's that
          // a case waits out scales with it (the signer's floors are 1-5 s; no halt is time-based).
          blockTimeMs: 100,
          tokens: [
            { address: FEE_TOKEN, symbol: "FEE", decimals: 18 },
            { address: BURN_TOKEN, symbol: "BURN", decimals: 18 },
          ],
        },
      },
    ],
  });
  kms = await startKmsEmulator();
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  // Before the custody set-up: its funding transaction comes from the fee token's deployer.
  abi = await deployFeeToken(rpc);
  burnAbi = await deployBurningFeeToken(rpc);
  const prepared = await prepareTestCustody(ctx, kms, { policies: "config" });
  hot = prepared.hotWallet;
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  FEE = assetIdOf(chain.chainId, FEE_TOKEN);

  // The operator's float, booked as treasury moves: 100 ETH and 50,000 FEE (the mint's Transfer).
  const treasury = { common: ctx.common, pool: ctx.db.pool, ledger, signerTransactions };
  const by = { by: "ops-anna", reason: "hot wallet float" };
  await bookTreasuryMove(treasury, {
    move: "fund",
    chainId: chain.chainId,
    txHash: prepared.fundTxHash,
    wallet: hot,
    amount: 100n * 10n ** 18n,
    ...by,
  });
  const float = await mint(hot, 50_000n);
  await bookTreasuryMove(treasury, {
    move: "fund",
    chainId: chain.chainId,
    txHash: float.transactionHash,
    wallet: hot,
    token: FEE_TOKEN,
    amount: 50_000n,
    ...by,
  });

  serviceConfig = prepared.config;
  const burnFloat = await mintBurn(hot, 50_000n);
  await bookTreasuryMove(treasury, {
    move: "fund",
    chainId: chain.chainId,
    txHash: burnFloat.transactionHash,
    wallet: hot,
    token: BURN_TOKEN,
    amount: 50_000n,
    ...by,
  });

  service = await startService(serviceConfig, { roles: [...ROLE_NAMES] });
  key = (
    await createApiKey(ctx.db.pool, {
      owner: "backend",
      scopes: ["withdrawals:write", "deposits:write", "ledger:read"],
    })
  ).plaintext;

  // Alice deposits 10,000 FEE (a mint to her deposit address), credited by the service.
  const alloc = await api("POST", "/v1/customers/alice/deposit-addresses", { chain: chain.key });
  await mint(alloc.address as Address, 10_000n);
  await waitFor(
    "alice's deposit credited",
    async () => {
      await mineOne();
      return (await alice()).available === 10_000n || undefined;
    },
    { timeoutMs: 60_000, everyMs: 50 },
  );
}, 180_000);
afterAll(async () => {
  await service?.stop();
  await ledger?.close();
  await kms?.stop();
  await ctx?.cleanup();
});

function mint(to: Address, amount: bigint) {
  return sendAndMine(rpc, {
    from: MINTER,
    to: FEE_TOKEN,
    data: encodeFunctionData({ abi, functionName: "mint", args: [to, amount] }),
  });
}

function mintBurn(to: Address, amount: bigint) {
  return sendAndMine(rpc, {
    from: MINTER,
    to: BURN_TOKEN,
    data: encodeFunctionData({ abi: burnAbi, functionName: "mint", args: [to, amount] }),
  });
}

async function tokenBalance(holder: Address, token: Address = FEE_TOKEN): Promise<bigint> {
  const data = encodeFunctionData({ abi, functionName: "balanceOf", args: [holder] });
  return BigInt(await rpc<Hex>("eth_call", [{ to: token, data }, "latest"]));
}

async function api(method: "GET" | "POST", path: string, body?: object) {
  const res = await fetch(`${service!.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body ? { "content-type": "application/json", "idempotency-key": randomUUID() } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return (await res.json()) as Record<string, unknown>;
}

const mineOne = () => rpc("evm_mine");

async function alice(assetId = FEE) {
  const a = await ledger.getAccount({ assetId, name: "user:alice" });
  return { available: a?.available ?? 0n, debitsPending: a?.debitsPending ?? 0n };
}

async function hotWalletBooked(assetId = FEE): Promise<bigint> {
  const a = await ledger.balance({ assetId, name: `custody:hot:${hot.toLowerCase()}` });
  return a.debitsPosted - a.creditsPosted;
}

async function withdraw(amount: bigint, asset: Address = FEE_TOKEN): Promise<string> {
  const w = await api("POST", "/v1/withdrawals", {
    customerId: "alice",
    chain: chain.key,
    asset,
    to: DEST,
    amount: amount.toString(),
  });
  expect(w.status, JSON.stringify(w)).toBe("signing");
  return String(w.id);
}

/** The withdrawal once the API shows `status`, mining a block per look when `mine`. */
async function untilStatus(id: string, status: string, { mine }: { mine: boolean }) {
  let seen: Record<string, unknown> = {};
  return waitFor(
    `withdrawal ${status}`,
    async () => {
      seen = await api("GET", `/v1/withdrawals/${id}`);
      if (seen.status === status) return seen;
      if (mine) await mineOne();
      return undefined;
    },
    { timeoutMs: 30_000, everyMs: 50 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; the withdrawal is ${seen.status}`);
  });
}

/** The posted ledger transfers claiming facts of `txHash`, by position. */
async function claims(txHash: string) {
  const { rows } = await ctx.db.pool.query<{ position: string; amount: string }>(
    `SELECT position, sum(posted_delta)::text AS amount FROM ledger.journal
      WHERE chain_id = $1 AND tx_hash = $2 AND posted_delta > 0
      GROUP BY position ORDER BY position`,
    [chain.chainId, txHash.toLowerCase()],
  );
  return rows;
}

const reconcileAtFinalBlock = () => reconcileAtFinal({ ctx, chain, rpc });

describe("withdrawing a fee-on-transfer token", () => {
  it("is followed to finalized, the customer pays the whole amount, and reconciles with no break", async () => {
    const id = await withdraw(1_000n);
    // Mined and paid out: from here only the following can lag behind.
    await waitFor(
      "withdrawal paid out",
      async () => {
        await mineOne();
        return (await tokenBalance(DEST)) > 0n || undefined;
      },
      { timeoutMs: 60_000, everyMs: 50 },
    );
    const final = await untilStatus(id, "finalized", { mine: true });

    // The chain: the recipient got 990, the collector 10; the hot wallet sent 1,000.
    expect(await tokenBalance(DEST)).toBe(990n);
    expect(await tokenBalance(FEE_COLLECTOR)).toBe(10n);
    expect(await tokenBalance(hot)).toBe(49_000n);
    // The ledger: alice paid the whole 1,000, nothing held; the hot wallet's account says 49,000.
    expect(await alice()).toEqual({ available: 9_000n, debitsPending: 0n });
    expect(await hotWalletBooked()).toBe(49_000n);
    // One ledger transfer per chain fact of the withdrawal: the gas, the recipient's, the fee's.
    expect(await claims(String(final.txHash))).toEqual([
      { position: "fee", amount: String(final.fee) },
      { position: "transfer:0", amount: "990" },
      { position: "transfer:1", amount: "10" },
    ]);
    expect((await ledger.check()).ok).toBe(true);

    const run = await reconcileAtFinalBlock();
    expect(run.breaks.map((b) => [b.type, b.key, b.action])).toEqual([]);
  }, 180_000);

  it("reorged out after confirmation: both parts reversed and held again, booked again once it mines again", async () => {
    const id = await withdraw(2_000n);
    const sent = await waitFor(
      "sent",
      async () => {
        const got = await api("GET", `/v1/withdrawals/${id}`);
        return got.txHash ? (got.txHash as Hex) : undefined;
      },
      { timeoutMs: 30_000, everyMs: 50 },
    );
    const mined = await waitFor(
      "mined",
      async () => {
        const r = await rpc<{ blockNumber: Hex } | null>("eth_getTransactionReceipt", [sent]);
        if (!r) await mineOne();
        return r ?? undefined;
      },
      { timeoutMs: 30_000, everyMs: 50 },
    );
    // Just enough for the confirmation rule, then nothing mined until the API has seen it.
    const height = BigInt(mined.blockNumber);
    while (BigInt(await rpc<Hex>("eth_blockNumber")) - height + 1n < 2n) await mineOne();
    await untilStatus(id, "confirmed", { mine: false });
    expect(await alice()).toEqual({ available: 7_000n, debitsPending: 0n });
    expect(await claims(sent)).toEqual([
      { position: "fee", amount: expect.any(String) },
      { position: "transfer:0", amount: "1980" },
      { position: "transfer:1", amount: "20" },
    ]);

    await rpc("anvil_reorg", [4, []]);
    await untilStatus(id, "broadcast", { mine: false });
    // Both parts reversed, the whole amount held again: not spent, not released.
    expect(await alice()).toEqual({ available: 7_000n, debitsPending: 2_000n });
    expect(await hotWalletBooked()).toBe(49_000n);

    // The same bytes mine again: confirmed again, then final; paid once.
    const final = await untilStatus(id, "finalized", { mine: true });
    expect(final.txHash).toBe(sent);
    expect(await tokenBalance(DEST)).toBe(990n + 1_980n);
    expect(await tokenBalance(hot)).toBe(47_000n);
    expect(await alice()).toEqual({ available: 7_000n, debitsPending: 0n });
    expect(await hotWalletBooked()).toBe(47_000n);
    expect((await ledger.check()).ok).toBe(true);

    const run = await reconcileAtFinalBlock();
    expect(run.breaks.map((b) => [b.type, b.key, b.action])).toEqual([]);
  }, 180_000);

  it("mined before the signer read a token's fee (migration 0111): read again after the upgrade, then booked", async () => {
    // The tracker before 0111 had no fee_on_transfer to write: every update of a request leaves
    // it NULL, as that revision did (the service runs as it would have).
    await ctx.db.pool.query(`
      CREATE FUNCTION custody.test_before_0111() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.fee_on_transfer := NULL; RETURN NEW; END $$;
      CREATE TRIGGER test_before_0111 BEFORE INSERT OR UPDATE ON custody.tx_requests
        FOR EACH ROW EXECUTE FUNCTION custody.test_before_0111()`);
    const id = await withdraw(500n);
    const request = await waitFor(
      "the payment final at the signer",
      async () => {
        await mineOne();
        const { rows } = await ctx.db.pool.query<{
          status: string;
          tx_hash: string;
          receipt_success: boolean;
          transfer_position: string | null;
          fee_on_transfer: unknown;
        }>(
          `SELECT status, tx_hash, receipt_success, transfer_position, fee_on_transfer
             FROM custody.tx_requests WHERE kind = 'withdrawal' AND ref_id = $1
              AND finalized_at IS NOT NULL`,
          [id],
        );
        return rows[0];
      },
      { timeoutMs: 60_000, everyMs: 50 },
    );
    // What that revision left: paid out and final, nothing to book it from; the hold stands.
    expect(request).toMatchObject({
      status: "confirmed",
      receipt_success: true,
      transfer_position: null,
      fee_on_transfer: null,
    });
    expect(await tokenBalance(DEST)).toBe(990n + 1_980n + 495n);
    expect((await api("GET", `/v1/withdrawals/${id}`)).status).not.toBe("finalized");
    expect(await alice()).toEqual({ available: 6_500n, debitsPending: 500n });

    // The upgrade: the service restarts on today's code.
    await service!.stop();
    await ctx.db.pool.query(`
      DROP TRIGGER test_before_0111 ON custody.tx_requests;
      DROP FUNCTION custody.test_before_0111()`);
    service = await startService(serviceConfig, { roles: [...ROLE_NAMES] });

    // The follower's full scan (every 30 s) finds the filled row: the payment is booked, not released.
    let seen: Record<string, unknown> = {};
    await waitFor(
      "withdrawal finalized after the upgrade",
      async () => {
        seen = await api("GET", `/v1/withdrawals/${id}`);
        return seen.status === "finalized" || undefined;
      },
      { timeoutMs: 90_000, everyMs: 500 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the withdrawal is ${seen.status}`);
    });
    // Audited (the revision before 0111 is imitated here by a trigger that also blanks the
    // recovery's own writes: only the last event is the upgrade's).
    const { rows: events } = await ctx.db.pool.query<{ details: unknown }>(
      `SELECT e.details FROM custody.tx_request_events e
         JOIN custody.tx_requests r ON r.id = e.request_id
        WHERE r.kind = 'withdrawal' AND r.ref_id = $1 AND e.event = 'fee_on_transfer_recovered'
        ORDER BY e.id`,
      [id],
    );
    expect(events.at(-1)?.details).toMatchObject({
      tx_hash: request.tx_hash,
      received: "495",
      token_fees: ["5"],
    });
    expect(await alice()).toEqual({ available: 6_500n, debitsPending: 0n });
    expect(await hotWalletBooked()).toBe(46_500n);
    expect(await claims(request.tx_hash)).toEqual([
      { position: "fee", amount: String(seen.fee) },
      { position: "transfer:0", amount: "495" },
      { position: "transfer:1", amount: "5" },
    ]);
    expect((await ledger.check()).ok).toBe(true);

    const run = await reconcileAtFinalBlock();
    expect(run.breaks.map((b) => [b.type, b.key, b.action])).toEqual([]);
  }, 240_000);

  it("a token whose logged Transfers fall short of the amount: booked, and reconciliation names the gap on the recipient's fact and the hot wallet", async () => {
    const BURN = assetIdOf(chain.chainId, BURN_TOKEN);
    const alloc = await api("POST", "/v1/customers/alice/deposit-addresses", { chain: chain.key });
    await mintBurn(alloc.address as Address, 10_000n);
    await waitFor(
      "alice's BURN deposit credited",
      async () => {
        await mineOne();
        return (await alice(BURN)).available === 10_000n || undefined;
      },
      { timeoutMs: 60_000, everyMs: 50 },
    );
    const id = await withdraw(1_000n, BURN_TOKEN);
    const final = await untilStatus(id, "finalized", { mine: true });
    const txHash = String(final.txHash).toLowerCase();

    // The chain: 980 to the recipient, 10 to the collector, 10 burned without a log; 1,000 left.
    expect(await tokenBalance(DEST, BURN_TOKEN)).toBe(980n);
    expect(await tokenBalance(BURN_COLLECTOR, BURN_TOKEN)).toBe(10n);
    expect(await tokenBalance(hot, BURN_TOKEN)).toBe(49_000n);
    // The customer pays the whole amount and the hot wallet's account agrees with the chain; the
    // recipient's part is booked as the amount less the logged fee, 10 more than its Transfer.
    expect(await alice(BURN)).toEqual({ available: 9_000n, debitsPending: 0n });
    expect(await hotWalletBooked(BURN)).toBe(49_000n);
    expect(await claims(txHash)).toEqual([
      { position: "fee", amount: String(final.fee) },
      { position: "transfer:0", amount: "990" },
      { position: "transfer:1", amount: "10" },
    ]);
    expect((await ledger.check()).ok).toBe(true);

    // The 10 no Transfer shows, named twice and nowhere else: the recipient's fact booked 10 more
    // than it carries, and the hot wallet's balance (equal on both sides) moved by 10 that no fact
    // explains (the balance check takes the mismatching fact as the chain's word, so the burn
    // shows there as an unindexed movement).
    const run = await reconcileAtFinalBlock();
    expect(
      run.breaks.map((b) => [b.type, b.key, b.chainAmount, b.ledgerAmount, b.difference]),
    ).toEqual([
      ["amount_mismatch", `${txHash}:transfer:0`, 980n, 990n, 10n],
      ["unexplained_balance_difference", `hot:${hot.toLowerCase()}`, 49_000n, 49_000n, 10n],
    ]);
  }, 180_000);
});
