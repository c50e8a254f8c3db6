/**
 * The bump stage of a task that lost the wallet's lease (its connection cut; a standby may be
 * replacing the same nonce by then): it must neither resend stored bytes nor ask KMS to sign a
 * replacement it can never store. Before, a due attempt's bytes went out (fees unknown, or at the
 * cap) before the first lease write failed, and a replacement was signed before its store failed.
 */
import { createPublicClient, type Hex, http, keccak256, type PublicClient, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { within } from "../ops/testing/wait.js";
import { watchedRequests } from "./broadcaster/attempts.js";
import { bump } from "./broadcaster/bump.js";
import type { BroadcasterContext } from "./broadcaster/context.js";
import { createBroadcasterContext } from "./broadcaster/index.js";
import type { KmsAccount } from "./kmsAccount.js";
import { acquireLease, type Lease, leaseKey } from "./lease.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let account: KmsAccount;
/** eth_sendRawTransaction calls the node answered (it never pools them: the attempt stays due). */
let sends = 0;
let feesDown = false;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { bumpIntervalMs: 300 } },
    proxy: startRpcProxy,
  });
  t.proxy!.setIntercept((call) => {
    if (call.method === "eth_feeHistory" && feesDown)
      return { error: { code: -32603, message: "feeHistory: backend unavailable" } };
    if (call.method !== "eth_sendRawTransaction") return undefined;
    sends++;
    return { result: keccak256((call.params as Hex[])[0]!) };
  });
  // One withdrawal signed and sent by a real signer, then left unmined: its attempt is due.
  account = await t.wallet(parseEther("10"));
  const signer = t.run(account);
  try {
    await t.withdraw(["lb-stuck"], { from: account.address });
    await waitFor(
      "the withdrawal broadcast",
      async () => (await getTxRequest(t.ctx.db.pool, "lb-stuck"))?.status === "broadcast",
      { timeoutMs: 10_000 },
    );
  } finally {
    await signer.stop();
  }
});

afterAll(async () => {
  t?.proxy?.setIntercept(undefined);
  await t?.stop();
});

/** The broadcaster's context for `account`; KMS signs counted. */
function contextFor(signs: { n: number }): BroadcasterContext {
  return createBroadcasterContext({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
    chain: t.chain,
    account: {
      address: account.address,
      signTransaction: (tx, options) => {
        signs.n++;
        return account.signTransaction(tx, options);
      },
    },
    publicClient: createPublicClient({
      cacheTime: 0,
      transport: http(t.proxy!.url),
    }) as PublicClient,
  });
}

/** The wallet's lease, taken and then lost (its connection ended by Postgres). */
async function lostLease(name: string): Promise<Lease> {
  const lease = await acquireLease({
    databaseUrl: t.ctx.db.url,
    key: leaseKey(t.chain.chainId, account.address),
    signal: new AbortController().signal,
    applicationName: name,
    once: true,
  });
  expect(lease?.isHeld()).toBe(true);
  const { rows } = await t.ctx.db.pool.query(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = $1`,
    [name],
  );
  expect(rows).toEqual([{ ok: true }]);
  await within("the lease to report lost", lease!.lost, 30_000);
  return lease!;
}

/** The stuck withdrawal's attempt, named due now (as the stall stage names one). */
async function dueNow(): Promise<Set<string>> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT id::text FROM custody.tx_attempts WHERE request_id = 'lb-stuck' AND status = 'broadcast'",
  );
  expect(rows).toHaveLength(1);
  return new Set([rows[0].id]);
}

async function attemptsOfStuck(): Promise<number> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'lb-stuck'",
  );
  return rows[0].n;
}

describe("the bump stage after the lease is lost", () => {
  it("resends no stored bytes when fees cannot be read", async () => {
    const signs = { n: 0 };
    const ctx = contextFor(signs);
    const lease = await lostLease("bump-lost-resend");
    const watched = await watchedRequests(ctx);
    expect(watched.map((r) => [r.id, r.status])).toEqual([["lb-stuck", "broadcast"]]);
    feesDown = true;
    const before = sends;
    try {
      await expect(bump(ctx, lease, watched, 0n, await dueNow())).rejects.toMatchObject({
        code: "SIGNER_LEASE_LOST",
      });
    } finally {
      feesDown = false;
    }
    expect(sends).toBe(before);
    expect(signs.n).toBe(0);
    await lease.release();
  });

  it("signs no replacement it could never store, and sends none", async () => {
    const signs = { n: 0 };
    const ctx = contextFor(signs);
    const lease = await lostLease("bump-lost-replace");
    const watched = await watchedRequests(ctx);
    const before = sends;
    await expect(bump(ctx, lease, watched, 0n, await dueNow())).rejects.toMatchObject({
      code: "SIGNER_LEASE_LOST",
    });
    expect(signs.n).toBe(0);
    expect(sends).toBe(before);
    expect(await attemptsOfStuck()).toBe(1);
    await lease.release();
  });
});
