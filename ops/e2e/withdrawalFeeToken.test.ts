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
 * both parts and they are booked again when the same bytes mine again.
 */

import { randomUUID } from "node:crypto";
import { type Abi, type Address, encodeFunctionData, getAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../api/apiKeys.js";
import { adapterPerChain, type ChainConfig } from "../../chains/index.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { anvilRpc, type Rpc, sendAndMine } from "../../indexers/testing/chain.js";
import { assetIdOf, bookTreasuryMove, createLedger, type Ledger } from "../../ledger/index.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { deployFeeToken, FEE_COLLECTOR, FEE_TOKEN } from "../../signer/sweeps/testing/feeToken.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";
import { prepareTestCustody } from "./setup.js";

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
let hot: Address;
let key: string;
let FEE: string;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        key: "local-a",
        config: {
          confirmations: { kind: "blocks", blocks: 2 },
          reorgWindow: 8,
          tokens: [{ address: FEE_TOKEN, symbol: "FEE", decimals: 18 }],
        },
      },
    ],
  });
  kms = await startKmsEmulator();
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  // Before the custody set-up: its funding transaction comes from the fee token's deployer.
  abi = await deployFeeToken(rpc);
  const prepared = await prepareTestCustody(ctx, kms, { policies: "config" });
  hot = prepared.hotWallet;
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  FEE = assetIdOf(chain.chainId, FEE_TOKEN);

  // The operator's float, booked as treasury moves: 100 ETH and 50,000 FEE (the mint's Transfer).
  const treasury = { common: ctx.common, pool: ctx.db.pool, ledger };
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

  service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
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
    { timeoutMs: 60_000, everyMs: 200 },
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

async function tokenBalance(holder: Address): Promise<bigint> {
  const data = encodeFunctionData({ abi, functionName: "balanceOf", args: [holder] });
  return BigInt(await rpc<Hex>("eth_call", [{ to: FEE_TOKEN, data }, "latest"]));
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

async function alice() {
  const a = await ledger.getAccount({ assetId: FEE, name: "user:alice" });
  return { available: a?.available ?? 0n, debitsPending: a?.debitsPending ?? 0n };
}

async function hotWalletBooked(): Promise<bigint> {
  const a = await ledger.balance({ assetId: FEE, name: `custody:hot:${hot.toLowerCase()}` });
  return a.debitsPosted - a.creditsPosted;
}

async function withdraw(amount: bigint): Promise<string> {
  const w = await api("POST", "/v1/withdrawals", {
    customerId: "alice",
    chain: chain.key,
    asset: FEE_TOKEN,
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
    { timeoutMs: 30_000, everyMs: 200 },
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

/** Reconciliation at a block the index has made final. */
async function reconcileAtFinal() {
  const head = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
  await waitFor(
    `block ${head} final in the index`,
    async () => {
      await mineOne();
      const r = await ctx.db.pool.query<{ block_number: string }>(
        "SELECT block_number FROM chain.checkpoints WHERE chain_id = $1",
        [chain.chainId],
      );
      return Number(r.rows[0]?.block_number ?? -1) - chain.reorgWindow >= head || undefined;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );
  return createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool: ctx.db.pool,
    chains: adapterPerChain(ctx.common),
  }).run({ chain, block: head, full: true });
}

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
      { timeoutMs: 60_000, everyMs: 200 },
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

    const run = await reconcileAtFinal();
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
      { timeoutMs: 30_000, everyMs: 200 },
    );
    const mined = await waitFor(
      "mined",
      async () => {
        const r = await rpc<{ blockNumber: Hex } | null>("eth_getTransactionReceipt", [sent]);
        if (!r) await mineOne();
        return r ?? undefined;
      },
      { timeoutMs: 30_000, everyMs: 200 },
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

    const run = await reconcileAtFinal();
    expect(run.breaks.map((b) => [b.type, b.key, b.action])).toEqual([]);
  }, 180_000);
});
