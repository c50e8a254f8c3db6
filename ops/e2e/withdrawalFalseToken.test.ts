/**
 * A withdrawal of a listed token whose `transfer()` returns false instead of reverting (old
 * ERC-20s: paused, a blacklist or a short balance answered with `false`), through the whole service
 * (every role) and its API on anvil with the KMS emulator. The token is paused after the customer's
 * deposit is credited; the hot wallet's payment mines with receipt status 1, logs no Transfer and
 * moves nothing. The signer reported it confirmed, then finalized; with no Transfer to book the
 * post against, the withdrawal stayed `broadcast` for ever, its hold standing (the customer's money
 * neither sent nor given back, WITHDRAWAL_OUTCOME_INCOMPLETE on every pass, and no operator command
 * could fail it: it was never `needs_review`). It fails at its final block
 * (TRANSFER_MOVED_NOTHING) like a reverted payment: the hold is released, the gas booked, and
 * reconciliation at the final block shows no break. A payment the signer recorded paid before
 * migration 0117 is read again after the upgrade and failed the same way.
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
import { deployFalseToken, FALSE_TOKEN } from "../../signer/testing/falseToken.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";
import { prepareTestCustody, reconcileAtFinal } from "./setup.js";

const DEST = getAddress("0x000000000000000000000000000000000000beef");
/** anvil dev account 3: mints and pauses the token (anyone may). */
const MINTER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906" as const;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;
let ledger: Ledger;
let chain: ChainConfig;
let rpc: Rpc;
let abi: Abi;
let hot: Address;
let key: string;
let TOKEN: string;
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
          blockTimeMs: 100,
          tokens: [{ address: FALSE_TOKEN, symbol: "FALSE", decimals: 18 }],
        },
      },
    ],
  });
  kms = await startKmsEmulator();
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  abi = await deployFalseToken(rpc);
  const prepared = await prepareTestCustody(ctx, kms, { policies: "config" });
  hot = prepared.hotWallet;
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  TOKEN = assetIdOf(chain.chainId, FALSE_TOKEN);

  // The operator's float, booked as treasury moves: 100 ETH and 50,000 FALSE (the mint's Transfer).
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
  const float = await tokenCall("mint", [hot, 50_000n]);
  await bookTreasuryMove(treasury, {
    move: "fund",
    chainId: chain.chainId,
    txHash: float.transactionHash,
    wallet: hot,
    token: FALSE_TOKEN,
    amount: 50_000n,
    ...by,
  });

  serviceConfig = prepared.config;
  service = await startService(serviceConfig, { roles: [...ROLE_NAMES] });
  key = (
    await createApiKey(ctx.db.pool, {
      owner: "backend",
      scopes: ["withdrawals:write", "deposits:write", "ledger:read"],
    })
  ).plaintext;

  // Alice deposits 10,000 FALSE (a mint to her deposit address), credited by the service.
  const alloc = await api("POST", "/v1/customers/alice/deposit-addresses", { chain: chain.key });
  await tokenCall("mint", [alloc.address as Address, 10_000n]);
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

function tokenCall(functionName: string, args: unknown[]) {
  return sendAndMine(rpc, {
    from: MINTER,
    to: FALSE_TOKEN,
    data: encodeFunctionData({ abi, functionName, args }),
  });
}

async function tokenBalance(holder: Address): Promise<bigint> {
  const data = encodeFunctionData({ abi, functionName: "balanceOf", args: [holder] });
  return BigInt(await rpc<Hex>("eth_call", [{ to: FALSE_TOKEN, data }, "latest"]));
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
  const a = await ledger.getAccount({ assetId: TOKEN, name: "user:alice" });
  return { available: a?.available ?? 0n, debitsPending: a?.debitsPending ?? 0n };
}

async function hotWalletBooked(): Promise<bigint> {
  const a = await ledger.balance({ assetId: TOKEN, name: `custody:hot:${hot.toLowerCase()}` });
  return a.debitsPosted - a.creditsPosted;
}

/** Gas booked so far (the fees:gas account's posted debits less credits). */
async function gasBooked(): Promise<bigint> {
  const g = await ledger.balance({ assetId: NATIVE, name: "fees:gas" });
  return g.debitsPosted - g.creditsPosted;
}

async function withdraw(amount: bigint): Promise<string> {
  const w = await api("POST", "/v1/withdrawals", {
    customerId: "alice",
    chain: chain.key,
    asset: FALSE_TOKEN,
    to: DEST,
    amount: amount.toString(),
  });
  expect(w.status, JSON.stringify(w)).toBe("signing");
  return String(w.id);
}

/** The withdrawal once the API shows `status`, mining a block per look; every status seen. */
async function untilStatus(id: string, status: string) {
  const statuses: unknown[] = [];
  let seen: Record<string, unknown> = {};
  await waitFor(
    `withdrawal ${status}`,
    async () => {
      seen = await api("GET", `/v1/withdrawals/${id}`);
      // (A rate-limited read answers 429 with no withdrawal: not a status.)
      if (typeof seen.status === "string" && statuses.at(-1) !== seen.status)
        statuses.push(seen.status);
      if (seen.status === status) return true;
      await mineOne();
      return undefined;
    },
    { timeoutMs: 90_000, everyMs: 150 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; the withdrawal is ${seen.status} (seen ${statuses})`);
  });
  return { seen, statuses };
}

const reconcileAtFinalBlock = () => reconcileAtFinal({ ctx, chain, rpc });

describe("withdrawing a token whose transfer() returns false", () => {
  it("mined with status 1 and nothing moved: failed at its final block, the hold released, the gas booked, no break", async () => {
    await tokenCall("setPaused", [true]);
    const gasBefore = await gasBooked();
    const id = await withdraw(1_000n);
    const { seen, statuses } = await untilStatus(id, "failed");

    // Mined, never reported paid.
    expect(statuses).not.toContain("confirmed");
    expect(seen.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    const receipt = await rpc<{ status: Hex; logs: unknown[] }>("eth_getTransactionReceipt", [
      seen.txHash,
    ]);
    expect(receipt).toMatchObject({ status: "0x1", logs: [] });
    expect(seen.failureReason).toBe("TRANSFER_MOVED_NOTHING");
    // Nothing moved on chain; the ledger agrees: alice has her 10,000 back, nothing held.
    expect(await tokenBalance(DEST)).toBe(0n);
    expect(await tokenBalance(hot)).toBe(50_000n);
    expect(await alice()).toEqual({ available: 10_000n, debitsPending: 0n });
    expect(await hotWalletBooked()).toBe(50_000n);
    // The hot wallet paid gas for it: booked.
    expect(await gasBooked()).toBeGreaterThan(gasBefore);
    expect((await ledger.check()).ok).toBe(true);

    const run = await reconcileAtFinalBlock();
    expect(run.breaks.map((b) => [b.type, b.key, b.action])).toEqual([]);
  }, 180_000);

  it("recorded paid before migration 0117: read again after the upgrade, then failed the same way", async () => {
    // The tracker before 0117 had no transfer_moved_nothing to write: every update of a request
    // leaves it false, as that revision did (the service runs as it would have).
    await ctx.db.pool.query(`
      CREATE FUNCTION custody.test_before_0117() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.transfer_moved_nothing := false; RETURN NEW; END $$;
      CREATE TRIGGER test_before_0117 BEFORE INSERT OR UPDATE ON custody.tx_requests
        FOR EACH ROW EXECUTE FUNCTION custody.test_before_0117()`);
    await tokenCall("setPaused", [true]);
    const id = await withdraw(500n);
    const request = await waitFor(
      "the payment final at the signer",
      async () => {
        await mineOne();
        const { rows } = await ctx.db.pool.query<{ status: string; tx_hash: string }>(
          `SELECT status, tx_hash FROM custody.tx_requests
            WHERE kind = 'withdrawal' AND ref_id = $1 AND finalized_at IS NOT NULL`,
          [id],
        );
        return rows[0];
      },
      { timeoutMs: 60_000, everyMs: 50 },
    );
    // What that revision left: reported paid and final, nothing to book it from; the hold stands.
    expect(request.status).toBe("confirmed");
    // (Its `broadcast` and the post are one transaction, so it may still show `signing`.)
    expect(["signing", "broadcast"]).toContain((await api("GET", `/v1/withdrawals/${id}`)).status);
    expect(await alice()).toEqual({ available: 9_500n, debitsPending: 500n });

    // The upgrade: the service restarts on today's code.
    await service!.stop();
    await ctx.db.pool.query(`
      DROP TRIGGER test_before_0117 ON custody.tx_requests;
      DROP FUNCTION custody.test_before_0117()`);
    service = await startService(serviceConfig, { roles: [...ROLE_NAMES] });

    const { seen } = await untilStatus(id, "failed");
    expect(seen.failureReason).toBe("TRANSFER_MOVED_NOTHING");
    expect(seen.txHash).toBe(request.tx_hash);
    const { rows: events } = await ctx.db.pool.query<{ event: string }>(
      `SELECT e.event FROM custody.tx_request_events e
         JOIN custody.tx_requests r ON r.id = e.request_id
        WHERE r.kind = 'withdrawal' AND r.ref_id = $1 ORDER BY e.id`,
      [id],
    );
    expect(events.map((e) => e.event)).toContain("transfer_moved_nothing_recovered");
    expect(await tokenBalance(DEST)).toBe(0n);
    expect(await alice()).toEqual({ available: 10_000n, debitsPending: 0n });
    expect(await hotWalletBooked()).toBe(50_000n);
    expect((await ledger.check()).ok).toBe(true);

    const run = await reconcileAtFinalBlock();
    expect(run.breaks.map((b) => [b.type, b.key, b.action])).toEqual([]);
  }, 240_000);
});
