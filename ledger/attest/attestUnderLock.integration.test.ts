/**
 * The reconciler role's attestation step under its per-chain lock (role.ts): a tick whose lock is
 * lost while it reads the reserves (the lock's session ended, and another reconciler took the
 * chain) stores no attestation and asks the signer for nothing; the same tick with its lock held
 * does both. Real Postgres, anvil, the signer's request intake, and an RPC proxy that slows the
 * reserves read.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { createHealth } from "../../foundation/health.js";
import type { RoleHandle } from "../../foundation/roles.js";
import { createShutdown } from "../../foundation/shutdown.js";
import { freshAddress } from "../../indexers/testing/chain.js";
import { capturedLogger, LOG_LEVELS } from "../../ops/testing/logs.js";
import { waitFor } from "../../ops/testing/wait.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { createAttestor } from "./attest.js";
import { createAttestRole } from "./role.js";
import { type AttestableChain, startAttestableChain } from "./testing/attestableChain.js";

const CHAIN_ID = 31337;
/** The attestation step's lock key for the chain (role.ts LOCK_BASE + chain id). */
const ATTEST_LOCK = BigInt(0x6174_7374_0000 + CHAIN_ID);
const HOT = freshAddress(601);

let t: AttestableChain;
/** The block of the clean, final reconciliation run the role attests. */
let block: number;

const stored = async () =>
  (
    await t.ctx.db.pool.query<{ attestations: number; requests: number }>(
      `SELECT (SELECT count(*)::int FROM attest.attestations WHERE chain_id = $1) AS attestations,
              (SELECT count(*)::int FROM custody.tx_requests
                WHERE chain_id = $1 AND kind = 'attestation') AS requests`,
      [CHAIN_ID],
    )
  ).rows[0]!;

/**
 * The attestation step of the reconciler role, reading the reserves through the proxy; with
 * `common`, a test's own (a logger it reads, a shutdown it triggers).
 */
function startRole(common: Common = t.ctx.common): Promise<RoleHandle> {
  return createAttestRole({ requestTransaction, getTxOutcomes }, (common) =>
    adapterPerChain(common, (c) => createEvmAdapter({ ...c, rpcUrls: [t.proxy.url] }, { common })),
  ).start({
    common,
    pool: t.ctx.db.pool,
    redis: t.ctx.redis.redis,
    queues: t.ctx.queues,
    health: createHealth(),
    chains: [{ ...t.chain, attestation: { everyBlocks: 1, intervalMs: 500 } }],
    httpPlugins: [],
  });
}

beforeAll(async () => {
  t = await startAttestableChain({ hot: HOT, attestor: freshAddress(602) });
  block = await t.finalRun();
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe("the attestation step under its chain lock", () => {
  // First: the tests below leave an attestation in flight, which a tick waits out before reading.
  it("a tick stops at its lock's loss while the reserves are still being read, not after the read", async () => {
    // A read at scale takes minutes; here one answer of the slow node, under the RPC timeout (10 s).
    // Only the reserves read is slow: the tick's calls before it (waited out, not under test)
    // answer at once.
    const READ_MS = 8_000;
    t.proxy.setDelay(READ_MS, ["eth_getBalance"]);
    const attestor = createAttestor({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(t.ctx.common, (c) =>
        createEvmAdapter({ ...c, rpcUrls: [t.proxy.url] }, { common: t.ctx.common }),
      ),
    });
    const held = new AbortController();
    const readsBefore = t.proxy.calls("eth_getBalance");
    try {
      const ticking = attestor.tick(t.chain, { everyBlocks: 1 }, { signal: held.signal });
      const outcome = ticking.then(
        () => ({ code: "returned" }),
        (error: { code?: string }) => ({ code: error.code }),
      );
      await waitFor(
        "the tick to read the reserves",
        () => t.proxy.calls("eth_getBalance") > readsBefore,
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
      t.proxy.setDelay(0);
    }
    expect(await stored()).toEqual({ attestations: 0, requests: 0 });
  }, 60_000);

  // The service's stop (ops/start.ts) aborts the RPC client's signal first, then stops the roles:
  // a tick reading then fails with the abort a moment before the role's stop. That is the stop, not
  // a failed attestation (an error line would page on every deploy).
  it("a tick reading the reserves when the process stops is logged as the stop, not as a failure, and stores nothing", async () => {
    const { logger, lines } = capturedLogger();
    const shutdown = createShutdown();
    t.proxy.setDelay(3_000, ["eth_getBalance"]);
    const readsBefore = t.proxy.calls("eth_getBalance");
    const role = await startRole({ ...t.ctx.common, logger, shutdown });
    try {
      await waitFor(
        "the tick to read the reserves",
        () => t.proxy.calls("eth_getBalance") > readsBefore,
        { timeoutMs: 30_000, everyMs: 20 },
      );
      await shutdown.kill("stop");
      await waitFor("the tick's read aborted", async () =>
        lines.some(
          (l) => l.msg === "attestation tick interrupted by stop" || l.msg === "attestation failed",
        ),
      );
    } finally {
      await role.stop();
      t.proxy.setDelay(0);
    }
    // Before the fix: ["attestation failed"] (err "stop").
    expect(lines.filter((l) => l.level >= LOG_LEVELS.error).map((l) => l.msg)).toEqual([]);
    expect(lines.map((l) => l.msg)).toContain("attestation tick interrupted by stop");
    expect(await stored()).toEqual({ attestations: 0, requests: 0 });
  }, 60_000);

  it("a tick whose lock is lost while it reads the reserves stores nothing and requests nothing", async () => {
    t.proxy.setDelay(3_000); // the tick is still reading when its lock goes
    const readsBefore = t.proxy.calls("eth_getBalance");
    const role = await startRole();
    // The other reconciler: it takes the chain's lock once the first one's session ended.
    const other = await t.ctx.db.pool.connect();
    let otherHolds = false;
    try {
      await waitFor(
        "the tick to read the reserves",
        () => t.proxy.calls("eth_getBalance") > readsBefore,
        { timeoutMs: 30_000, everyMs: 20 },
      );
      const { rows } = await t.ctx.db.pool.query<{ ok: boolean }>(
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
      t.proxy.setDelay(0);
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
    const { rows } = await t.ctx.db.pool.query<{ block_number: string; status: string }>(
      "SELECT block_number::text, status FROM attest.attestations WHERE chain_id = $1",
      [CHAIN_ID],
    );
    expect(rows).toEqual([{ block_number: String(block), status: "requested" }]);
    expect(await stored()).toEqual({ attestations: 1, requests: 1 });
  }, 120_000);
});
