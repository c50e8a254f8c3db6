/**
 * A customer whose withdrawals a reorg shortfall blocked (DESIGN "Money flows") is not paid by a
 * withdrawal already handed to the signer but not signed yet: it waits there (here: the hot wallet
 * cannot pay it), the deposit that funded it is reorged out, and once the wallet is funded the
 * signer would sign and send it. The api worker's pass pulls it back before a nonce is taken (the
 * signer's request is withdrawn, the withdrawal fails CUSTOMER_WITHDRAWALS_BLOCKED, its hold is
 * released); one the signer already signed cannot be stopped and is left to the chain, hold
 * standing. Real Postgres, anvil, ledger, deposit crediting and a real wallet signer; the
 * indexer's rows are written as the indexer writes them.
 */
import { type Hex, parseEther, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../foundation/logger.js";
import { createMetrics } from "../../foundation/metrics.js";
import { anvilRpc, type Rpc } from "../../indexers/testing/chain.js";
import { createDepositCrediting, isWithdrawalBlocked } from "../../ledger/index.js";
import { waitFor } from "../../ops/testing/wait.js";
import type { SignerAccount } from "../../signer/broadcaster/index.js";
import { getTxRequest, startWalletSigner, type WalletSigner } from "../../signer/index.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { ANVIL_KEY_0 } from "../testing/factory.js";
import { createWithdrawals, type Withdrawals } from "./service.js";

const CHAIN = 31337;
const ETH = 10n ** 18n;
const NATIVE = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let withdrawals: Withdrawals;
let requester: string;
let rpc: Rpc;
let signer: WalletSigner | undefined;
let blocks = 10;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    policy: { perTransaction: 100n * ETH, rolling24h: 1000n * ETH, approvalThreshold: 100n * ETH },
    fund: { customers: [], amount: 0n },
  });
  withdrawals = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger: t.ledger });
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
  rpc = anvilRpc(t.ctx.config.chains[0]!.rpcUrls[0]!);
}, 120_000);
afterAll(async () => {
  await signer?.stop();
  await t?.cleanup();
});

const crediting = () =>
  createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger: t.ledger });

/** A confirmed 5 ETH deposit to `customer`, credited; returns a function that reorgs it out. */
async function creditedDeposit(customer: string) {
  const n = ++blocks;
  const address = `0x${n.toString(16).padStart(2, "0").repeat(20)}`;
  const tx = `0x${n.toString(16).padStart(2, "0").repeat(32)}`;
  const pool = t.ctx.db.pool;
  await pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     VALUES ($1, $2, 'deposit', $3)`,
    [CHAIN, address, customer],
  );
  await pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount, status)
     VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, $8, 'confirmed')`,
    [CHAIN, n, `0xb${n}`, tx, ZERO, `0x${"ee".repeat(20)}`, address, (5n * ETH).toString()],
  );
  expect((await crediting().sweep({ chainId: CHAIN })).credited).toBe(1);
  return async () => {
    await pool.query(
      `UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true
        WHERE tx_hash = $1`,
      [tx],
    );
    await pool.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       VALUES ($1, 1, $2, $3, $4, $3, $5, false)`,
      [CHAIN, n - 1, n, `0xb${n}`, `0xnew${n}`],
    );
    expect((await crediting().sweep({ chainId: CHAIN })).held).toBe(1);
    expect(await isWithdrawalBlocked(pool, customer)).toBe(true);
  };
}

const setBalance = (wei: bigint) => rpc("anvil_setBalance", [t.hotWallet, toHex(wei)]);
const destBalance = async () => BigInt(await rpc<Hex>("eth_getBalance", [DEST, "latest"]));

/** What the wallet signer logged (JSON lines), for the last test. */
const signerLog: string[] = [];

function startSigner(account: SignerAccount = privateKeyToAccount(ANVIL_KEY_0)) {
  const logger = createLogger("warn", { write: (line: string) => void signerLog.push(line) });
  signer = startWalletSigner({
    common: { ...t.ctx.common, logger },
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
    chain: t.ctx.config.chains[0]!,
    account: async () => account,
    databaseUrl: t.ctx.db.url,
    pollMs: 50,
    settings: { unpaidRetryMs: 100 },
  });
  return signer;
}

/** custody_api_blocked_withdrawals_total{outcome}: what the custody team's alert reads. */
async function blockedCount(
  outcome: "pulled_back" | "in_flight",
  registry = t.ctx.common.metrics.registry,
): Promise<number> {
  const metric = registry.getSingleMetric("custody_api_blocked_withdrawals_total");
  const values = (await metric?.get())?.values ?? [];
  return values.find((v) => v.labels.outcome === outcome)?.value ?? -1;
}

async function get(id: string) {
  const res = await t.call(t.keys["withdrawals:write"], {
    method: "GET",
    url: `/v1/withdrawals/${id}`,
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

describe("a withdrawal handed to the signer when a reorg blocks its customer", () => {
  it("is pulled back before it is signed: never sent, failed CUSTOMER_WITHDRAWALS_BLOCKED, hold released", async () => {
    expect(t.hotWallet).toBe(privateKeyToAccount(ANVIL_KEY_0).address.toLowerCase());
    const reorg = await creditedDeposit("alice");
    // The hot wallet cannot pay it yet: the request waits unsigned, no nonce taken.
    await setBalance(parseEther("0.001"));
    const w = await t.withdrawNative(requester, "alice", 5n * ETH);
    expect(w.status).toBe("signing");
    const s = startSigner();
    await waitFor("the signer running", async () => s.isActive() && s.isLoaded());
    await new Promise((r) => setTimeout(r, 500));
    expect((await getTxRequest(t.ctx.db.pool, `withdrawal:${w.id}`))?.status).toBe("pending");

    // The deposit that funded it is reorged out: alice's hold finds nothing available, she is
    // blocked. The api worker's pass runs (every second in the worker role).
    await reorg();
    await withdrawals.syncOutcomes();

    // The treasury funds the hot wallet: the signer takes whatever is still pending.
    const paidBefore = await destBalance();
    await setBalance(parseEther("100"));
    const request = await waitFor(
      "the signer's request decided",
      async () => {
        const r = await getTxRequest(t.ctx.db.pool, `withdrawal:${w.id}`);
        return r && r.status !== "pending" ? r : undefined;
      },
      { timeoutMs: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(
      request.status,
      "the blocked customer's withdrawal was signed and sent after the block",
    ).toBe("failed");
    expect(request.nonce).toBeNull();
    const attempts = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1",
      [`withdrawal:${w.id}`],
    );
    expect(attempts.rows[0].n).toBe(0);
    expect(await destBalance()).toBe(paidBefore);

    const after = await get(w.id);
    expect(after.status).toBe("failed");
    expect(after.failureReason).toBe("CUSTOMER_WITHDRAWALS_BLOCKED");
    const balance = await t.ledger.balance({ assetId: NATIVE, name: "user:alice" });
    expect(balance.debitsPending).toBe(0n);
    // The next pass leaves it as it is.
    await withdrawals.syncOutcomes();
    expect((await get(w.id)).status).toBe("failed");
    // Counted once, for the custody team's dashboard (old code: expected -1 to be 1: no metric,
    // only a log line).
    expect(await blockedCount("pulled_back")).toBe(1);
    expect(await blockedCount("in_flight")).toBe(0);
  });

  it("one the signer already signed is left to the chain: its hold stands, it is followed", async () => {
    await setBalance(parseEther("100"));
    if (!signer) startSigner();
    const reorg = await creditedDeposit("bob");
    const w = await t.withdrawNative(requester, "bob", 5n * ETH);
    await waitFor("bob's withdrawal signed", async () => {
      const r = await getTxRequest(t.ctx.db.pool, `withdrawal:${w.id}`);
      return r && r.status !== "pending" && r.nonce !== null ? r : undefined;
    });
    await reorg();
    await withdrawals.syncOutcomes();
    const request = await getTxRequest(t.ctx.db.pool, `withdrawal:${w.id}`);
    expect(request?.status).not.toBe("failed");
    expect((await get(w.id)).status).not.toBe("failed");
    const balance = await t.ledger.balance({ assetId: NATIVE, name: "user:bob" });
    expect(balance.debitsPending + balance.debitsPosted).toBeGreaterThanOrEqual(5n * ETH);
    // It may pay out money the reorg took: counted for the BlockedWithdrawalInFlight alert, once
    // per worker however many passes see it (old code: expected -1 to be 1: a log line only).
    expect(await blockedCount("in_flight")).toBe(1);
    await withdrawals.syncOutcomes();
    expect(await blockedCount("in_flight")).toBe(1);
    expect(await blockedCount("pulled_back")).toBe(1);
    // A restarted api worker (or a second one: its own registry) does not count it again: the
    // alert fired for it once (old code: expected 1 to be 0: each worker process counted it anew,
    // and BlockedWithdrawalInFlight fired again at every deploy while it stayed in flight).
    const restarted = createMetrics({ defaults: false });
    const again = createWithdrawals({
      common: { ...t.ctx.common, metrics: restarted },
      pool: t.ctx.db.pool,
      ledger: t.ledger,
    });
    await again.syncOutcomes();
    expect(await blockedCount("in_flight", restarted.registry)).toBe(0);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT customer_id FROM api.blocked_withdrawals_in_flight WHERE withdrawal_id = $1",
      [w.id],
    );
    expect(rows).toEqual([{ customer_id: "bob" }]);
  });

  it("taken back while the signer signs it: its signature is thrown away, the rest of the batch is sent without a nonce gap", async () => {
    await signer?.stop();
    signer = undefined;
    signerLog.length = 0;
    await setBalance(parseEther("100"));
    const reorg = await creditedDeposit("dave");
    await creditedDeposit("carol");
    // Both wait in the same intake batch: carol's (not blocked) first, then dave's.
    const paid = await t.withdrawNative(requester, "carol", 1n * ETH);
    const held = await t.withdrawNative(requester, "dave", 5n * ETH);
    // The wallet's key signs dave's only when the test lets it: the block lands meanwhile.
    const key = privateKeyToAccount(ANVIL_KEY_0);
    let signing = false;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const s = startSigner({
      address: key.address,
      async signTransaction(tx) {
        if (tx.value === 5n * ETH) {
          signing = true;
          await gate;
        }
        return key.signTransaction(tx as Parameters<typeof key.signTransaction>[0]);
      },
    } as SignerAccount);
    await waitFor("dave's withdrawal being signed", async () => signing && s.isActive());
    await reorg();
    await withdrawals.syncOutcomes();
    expect((await get(held.id)).status).toBe("failed");
    release();

    const carol = await waitFor(
      "carol's withdrawal sent",
      async () => {
        const r = await getTxRequest(t.ctx.db.pool, `withdrawal:${paid.id}`);
        return r && r.nonce !== null ? r : undefined;
      },
      { timeoutMs: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 300));
    const dave = (await getTxRequest(t.ctx.db.pool, `withdrawal:${held.id}`))!;
    expect(dave.status).toBe("failed");
    expect(dave.nonce).toBeNull();
    const attempts = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1",
      [`withdrawal:${held.id}`],
    );
    expect(attempts.rows[0].n).toBe(0);
    // No nonce was left open behind dave's: carol's is the wallet's next, and it mines.
    const { rows } = await t.ctx.db.pool.query<{ max: string }>(
      `SELECT max(nonce)::text AS max FROM custody.tx_requests
        WHERE from_address = $1 AND nonce IS NOT NULL`,
      [t.hotWallet],
    );
    expect(BigInt(rows[0]!.max)).toBe(carol.nonce);
    await waitFor(
      "carol's withdrawal mined",
      async () =>
        ["mined", "confirmed"].includes(
          (await getTxRequest(t.ctx.db.pool, `withdrawal:${paid.id}`))?.status ?? "",
        ),
      { timeoutMs: 10_000 },
    );
    const daveBalance = await t.ledger.balance({ assetId: NATIVE, name: "user:dave" });
    expect(daveBalance.debitsPending).toBe(0n);
    // A request taken back is a caller's right, not a fault: the broadcaster's session goes on.
    expect(signerLog.filter((l) => l.includes("broadcaster failed"))).toEqual([]);
  });
});
