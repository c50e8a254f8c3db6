/**
 * What the console's pages tell an operator (inject, real Postgres and anvil): a halted chain is
 * shown halted (never "healthy" because its lag is still small), in /v1/chains and on the overview;
 * a lagging first RPC endpoint does not hide the chain's lag; hot wallet balances come from the
 * chain's own latest completed run, say when it read them, and a report that cannot be read shows
 * as an error; receipt_unknown withdrawals have their own overview section; the audit page shows
 * the newest entries however long the log is.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/proxy.js";
import { appendAudit } from "../../foundation/audit.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { consoleGet, consoleSignIn } from "./testing/inject.js";
import { hotBalance, hotWalletsSection, insertReconRun } from "./testing/reconRuns.js";

let t: ApiTestContext;
let session: string;
/** The chain's first RPC endpoint: the anvil seen through a node that lags (100 blocks). */
let lagging: LyingProxy;
/** The anvil itself: the chain's second endpoint. */
let anvil: string;
const FLOOR = 5n * 10n ** 18n;
beforeAll(async () => {
  lagging = await startLyingProxy([]);
  t = await createApiTestContext({
    chains: [{ chainId: 31337, key: "local-a" }],
    configure: (ctx) => {
      const chain = ctx.config.chains[0]!;
      anvil = chain.rpcUrls[0]!;
      lagging.setBackends([{ url: anvil, lag: 100 }]);
      const config = Object.freeze({
        ...ctx.config,
        chains: [{ ...chain, rpcUrls: [lagging.url, anvil], nativeHotFloor: FLOOR }],
      });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  });
  session = (await consoleSignIn(t.app, t.keys.admin)).session!;
});
afterAll(async () => {
  await t?.cleanup();
  await lagging?.close();
});

/** JSON-RPC to the anvil itself (the best node). */
async function anvilRpc(method: string, params: unknown[] = []): Promise<unknown> {
  const res = await fetch(anvil, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return ((await res.json()) as { result: unknown }).result;
}
const anvilHead = async () => BigInt((await anvilRpc("eth_blockNumber")) as string);

/** The indexer's checkpoint of chain 31337 at `block`. */
const checkpointAt = (block: bigint) =>
  t.ctx.db.pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES (31337, $1, '0x00')
     ON CONFLICT (chain_id) DO UPDATE SET block_number = EXCLUDED.block_number`,
    [block.toString()],
  );

/** `n` withdrawals of `status` straight into api.withdrawals, `minutesAgo` old (a read test). */
const insertWithdrawals = (n: number, status: string, minutesAgo: number, customer = "cust") =>
  t.ctx.db.pool.query(
    `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
            requested_by, api_key_id, idempotency_key, created_at)
     SELECT gen_random_uuid(), $4, 31337, '0x${"0".repeat(40)}', '0x${"7".repeat(40)}', 1000,
            $2, 'owner', $3, 'seed-' || $2 || '-' || g || '-' || $5 || '-' || $4, now() - $5::int * interval '1 minute' + g * interval '1 ms'
       FROM generate_series(1, $1) g`,
    [n, status, t.keyRows["withdrawals:write"].id, customer, minutesAgo],
  );

/** The chain's row of the overview's Chains table. */
const chainRow = (body: string) =>
  /<tr><td>test chain 31337 \(local-a, 31337\)<\/td>.*?<\/tr>/s.exec(body)?.[0];

describe("chain status", () => {
  it("a lagging first endpoint does not hide the lag: the best head among the endpoints, and which one answered", async () => {
    await anvilRpc("anvil_mine", ["0xc8"]);
    const head = await anvilHead();
    // 80 blocks behind the best node, 20 ahead of the first endpoint's head (max lag 50).
    await checkpointAt(head - 80n);
    const chain = (
      await t.call(t.keys["deposits:read"], { method: "GET", url: "/v1/chains" })
    ).json().chains[0];
    expect(chain).toMatchObject({
      head: head.toString(),
      lag: "80",
      healthy: false,
      headEndpoint: new URL(anvil).origin,
    });
    const row = chainRow((await consoleGet(t.app, session, "/console")).body);
    expect(row).toContain("lagging");
    expect(row).toContain(new URL(anvil).origin);
  });

  it("a halted chain is halted and not healthy, in /v1/chains and on the overview, while its lag is small", async () => {
    const pool = t.ctx.db.pool;
    const head = await anvilHead();
    await checkpointAt(head);
    const chains = async () =>
      (await t.call(t.keys["deposits:read"], { method: "GET", url: "/v1/chains" })).json()
        .chains[0];
    expect(await chains()).toMatchObject({ healthy: true, halted: null });
    expect(chainRow((await consoleGet(t.app, session, "/console")).body)).toContain("healthy");

    await pool.query(
      `INSERT INTO chain.halts (chain_id, reason, details) VALUES (31337, $1, '{}'::jsonb)`,
      [`reorg reaches finalized block ${head}`],
    );
    const halted = await chains();
    expect(halted).toMatchObject({
      healthy: false,
      halted: { reason: `reorg reaches finalized block ${head}` },
    });
    expect(halted.halted.since).toMatch(/^\d{4}-\d\d-\d\dT/);
    const row = chainRow((await consoleGet(t.app, session, "/console")).body);
    expect(row).toContain("halted");
    expect(row).toContain(`reorg reaches finalized block ${head}`);
    expect(row).toContain("custody-node chains resume");
    expect(row).not.toContain(">healthy<");

    await pool.query(
      "UPDATE chain.halts SET resumed_at = now(), resumed_by = 'ops' WHERE chain_id = 31337",
    );
    expect(await chains()).toMatchObject({ healthy: true, halted: null });
  });
});

describe("hot wallets on the overview", () => {
  const wallet = `0x${"ab".repeat(20)}`;
  const run = (chainId: number, status: string, balances: unknown, finishedAt?: string | null) =>
    insertReconRun(t.ctx.db.pool, chainId, status, balances, finishedAt);

  it("reads the chain's own latest completed run, however many runs other chains made since, and says when it read them", async () => {
    const id = await run(
      31337,
      "completed",
      [hotBalance(wallet, FLOOR - 1n)],
      "2026-11-30T08:09:10Z",
    );
    // The chain's newest run failed; another chain reconciled 60 times since.
    await run(31337, "failed", []);
    for (let i = 0; i < 60; i++) await run(999, "completed", []);
    const section = hotWalletsSection((await consoleGet(t.app, session, "/console")).body);
    expect(section).not.toContain("no completed reconciliation run yet");
    expect(section).toContain(wallet);
    expect(section).toContain("below floor");
    expect(section).toContain(`run ${id} at block 7`);
    expect(section).toContain('datetime="2026-11-30T08:09:10.000Z"');
  });

  it("a run report the API will not give shows as an error in the chain's row, not as no wallet", async () => {
    // A stored run whose report cannot be built (the API answers 500).
    const id = await run(31337, "completed", {}, "2026-12-01T00:00:00Z");
    const section = hotWalletsSection((await consoleGet(t.app, session, "/console")).body);
    expect(section).toContain(`run ${id}`);
    expect(section).toMatch(/class="bad"[^>]*>[^<]*report/);
  });

  it("a latest completed run older than ReconciliationStale's 30 minutes is flagged stale; a fresh one is not", async () => {
    const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
    // A reconciler that stopped 2 hours ago: its last run's balances are shown, and said to be old.
    const old = await run(31337, "completed", [hotBalance(wallet, FLOOR + 1n)], ago(120));
    const stale = hotWalletsSection((await consoleGet(t.app, session, "/console")).body);
    expect(stale).toContain(`run ${old} at block 7`);
    expect(stale).toMatch(
      /class="bad"[^>]*>stale: no reconciliation run of this chain completed for 120 minutes/,
    );

    const fresh = await run(31337, "completed", [hotBalance(wallet, FLOOR + 1n)], ago(2));
    const section = hotWalletsSection((await consoleGet(t.app, session, "/console")).body);
    expect(section).toContain(`run ${fresh} at block 7`);
    expect(section).not.toContain("stale");
  });
});

describe("audit page", () => {
  it("shows the newest entries, not the first 1000, once the log is longer", async () => {
    const pool = t.ctx.db.pool;
    for (let i = 0; i < 1001; i++)
      await appendAudit(pool, {
        actor: "ops",
        action: "test.filler",
        entityType: "test",
        entityId: `filler-${i}`,
      });
    await appendAudit(pool, {
      actor: "ops",
      action: "test.latest",
      entityType: "test",
      entityId: "the-latest-entry",
    });
    const page = await consoleGet(t.app, session, "/console/audit");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("the-latest-entry");
    // Newest first, and the page says older entries exist beyond what it shows.
    expect(page.body.indexOf("the-latest-entry")).toBeLessThan(page.body.indexOf("filler-1000"));
    expect(page.body).toContain("older entries are not shown");
    // The API's own order, for any client: newest first on request, the cursor going back.
    const newest = (
      await t.call(t.keys.admin, { method: "GET", url: "/v1/audit?order=newest&limit=2" })
    ).json().entries;
    expect(newest.map((e: { entityId: string }) => e.entityId)).toEqual([
      "the-latest-entry",
      "filler-1000",
    ]);
    const next = (
      await t.call(t.keys.admin, {
        method: "GET",
        url: `/v1/audit?order=newest&limit=1&after=${newest[1].id}`,
      })
    ).json().entries;
    expect(next.map((e: { entityId: string }) => e.entityId)).toEqual(["filler-999"]);
  });
});

describe("withdrawal lists", () => {
  const insert = insertWithdrawals;

  it("the overview has a receipt_unknown section listing them (as it has one for needs_review)", async () => {
    await insert(1, "receipt_unknown", 5, "the-unknown-receipt-customer");
    const overview = (await consoleGet(t.app, session, "/console")).body;
    const start = overview.indexOf('id="receipt-unknown"');
    expect(start).toBeGreaterThan(-1);
    const section = overview.slice(start, overview.indexOf("</section>", start));
    expect(section).toContain("the-unknown-receipt-customer");
    expect(section).toContain("receipt_unknown");
  });

  it("lists the newest withdrawals (a new receipt_unknown one among 200 older is shown) and says when a list is cut", async () => {
    await insert(200, "finalized", 60);
    await insert(1, "receipt_unknown", 1, "the-newest-customer");
    await insert(201, "pending_approval", 30);
    const page = await consoleGet(t.app, session, "/console/withdrawals");
    expect(page.statusCode).toBe(200);
    const all = page.body.slice(page.body.indexOf('id="all-withdrawals"'));
    expect(all).toContain("the-newest-customer");
    expect(all).toContain("receipt_unknown");
    expect(all).toMatch(/older withdrawals are not shown/);
    // The approval queue is worked oldest first; the 201st is not hidden silently.
    const queue = page.body.slice(
      page.body.indexOf('id="approval-queue"'),
      page.body.indexOf('id="needs-review"'),
    );
    expect(queue).toMatch(/more are not shown/);
    const overview = (await consoleGet(t.app, session, "/console")).body;
    expect(overview).toContain("more than 200 withdrawal(s)");
    // The API's newest-first order, for any client, with its cursor going back.
    const newest = (
      await t.call(t.keys["withdrawals:write"], {
        method: "GET",
        url: "/v1/withdrawals?order=newest&limit=2",
      })
    ).json().withdrawals;
    expect(newest[0].customerId).toBe("the-newest-customer");
    const next = (
      await t.call(t.keys["withdrawals:write"], {
        method: "GET",
        url: `/v1/withdrawals?order=newest&limit=1&after=${newest[1].id}`,
      })
    ).json().withdrawals;
    expect(next[0].status).toBe("pending_approval");
    expect(next[0].createdAt < newest[1].createdAt).toBe(true);
  });
});

describe("deposit lists", () => {
  it("'Recent deposits' are the newest (a new one after 100 older is shown) and a cut list says so", async () => {
    const pool = t.ctx.db.pool;
    const address = `0x${"a1".repeat(20)}`;
    await pool.query(
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES (31337, $1, 'deposit', 'dora')`,
      [address],
    );
    // 100 older deposits, then one more (the newest: amount 777).
    await pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       SELECT 31337, g, '0x' || lpad(to_hex(g), 64, 'b'), '0x' || lpad(to_hex(g), 64, 'a'), 0, 'tx',
              'native', '0x${"0".repeat(40)}', '0x${"7".repeat(40)}', $1,
              CASE WHEN g = 101 THEN 777 ELSE 1000 END, 'confirmed'
         FROM generate_series(1, 101) g`,
      [address],
    );
    const page = await consoleGet(t.app, session, "/console/deposits");
    expect(page.statusCode).toBe(200);
    const recent = page.body.slice(page.body.indexOf('id="recent-deposits"'));
    expect(recent).toContain('title="777 base units"');
    expect(recent).toMatch(/older deposits are not shown/);
  });
});
