import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { parseFileConfig } from "../foundation/config.js";
import { createPool, withTransaction } from "../foundation/db.js";
import { seedYearOfAttestations } from "../ledger/recon/testing/attestedCustody.js";
import { requestTransaction } from "../signer/index.js";
import { setTxRequestState } from "../signer/testing/txRequestState.js";
import { registerStateMetrics } from "./stateMetrics.js";
import { minimalChain } from "./testing/configFile.js";
import { createTestDatabase, type TestDatabase, tablePagesRead } from "./testing/database.js";

const zero = `0x${"0".repeat(40)}`;
const to = `0x${"1".repeat(40)}`;

/** A chain entry of the config file (minimalChain's 1 s blocks); `extra` adds or overrides fields. */
const chainEntry = (chainId: number, extra: Record<string, unknown> = {}) => ({
  ...minimalChain,
  key: `chain-${chainId}`,
  chainId,
  ...extra,
});

/** The value of one series in the registry's text exposition, or undefined when absent. */
async function series(
  registry: Registry,
  name: string,
  labels: string,
): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  if (line === undefined) return undefined;
  const value = line.split(" ").at(-1)!;
  return value === "+Inf" ? Number.POSITIVE_INFINITY : Number(value);
}

describe("state metrics (withdrawals by status and age, hot wallet floor, ceiling and count)", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(
      `INSERT INTO api.api_keys (id, owner, secret_hash, scopes) VALUES ($1, 'ops', $2, '{}')`,
      ["0123456789abcdef", "a".repeat(64)],
    );
    const rows: [string, string][] = [
      ["pending_approval", "10 minutes"],
      ["pending_approval", "2 minutes"],
      ["needs_review", "3 hours"],
      ["finalized", "5 days"],
    ];
    for (const [i, [status, age]] of rows.entries())
      await db.pool.query(
        `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
                                      requested_by, api_key_id, idempotency_key, created_at)
         VALUES (gen_random_uuid(), 'c1', 31337, $1, $2, 1, $3, 'ops', '0123456789abcdef', $4,
                 now() - $5::interval)`,
        [zero, to, status, `k${i}`, age],
      );
    // Requested two days ago (a long approval), confirmed four hours ago: every status change
    // sets updated_at (api/withdrawals/transitions.ts), so it is when the status was entered.
    await db.pool.query(
      `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
                                    requested_by, api_key_id, idempotency_key, created_at, updated_at)
       VALUES (gen_random_uuid(), 'c1', 31337, $1, $2, 1, 'confirmed', 'ops', '0123456789abcdef',
               'k-confirmed', now() - interval '2 days', now() - interval '4 hours')`,
      [zero, to],
    );
    // Sent 90 minutes ago and never mined since; back in receipt_unknown 5 minutes ago.
    await db.pool.query(
      `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
                                    requested_by, api_key_id, idempotency_key, created_at, updated_at,
                                    unmined_since)
       VALUES (gen_random_uuid(), 'c1', 31337, $1, $2, 1, 'receipt_unknown', 'ops',
               '0123456789abcdef', 'k-unmined', now() - interval '2 hours',
               now() - interval '5 minutes', now() - interval '90 minutes')`,
      [zero, to],
    );
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("counts open withdrawals per status with the oldest one's age, and exports floor, ceiling and hot wallet count", async () => {
    const config = parseFileConfig(chainSchema, {
      chains: [
        chainEntry(31337, {
          key: "local-a",
          nativeHotFloor: "1000000000000000000",
          nativeHotCeiling: "5000000000000000000",
        }),
      ],
    });
    const registry = new Registry();
    registerStateMetrics(registry, {
      pool: db.pool,
      chains: config.chains,
      hotWallets: [
        { chain: "local-a", kmsKeyId: "alias/hot-a" },
        { chain: "local-a", kmsKeyId: "alias/hot-b" },
        { chain: "not-served-here", kmsKeyId: "alias/hot-c" },
      ],
    });

    expect(await series(registry, "custody_withdrawals", 'status="pending_approval"')).toBe(2);
    expect(await series(registry, "custody_withdrawals", 'status="needs_review"')).toBe(1);
    expect(await series(registry, "custody_withdrawals", 'status="broadcast"')).toBe(0);
    // A finalized withdrawal is not open: no series for it.
    expect(await series(registry, "custody_withdrawals", 'status="finalized"')).toBeUndefined();

    const pendingAge = await series(
      registry,
      "custody_withdrawal_oldest_age_seconds",
      'status="pending_approval"',
    );
    expect(pendingAge).toBeGreaterThanOrEqual(600);
    expect(pendingAge).toBeLessThan(3 * 3600);
    expect(
      await series(registry, "custody_withdrawal_oldest_age_seconds", 'status="needs_review"'),
    ).toBeGreaterThanOrEqual(3 * 3600);
    expect(
      await series(registry, "custody_withdrawal_oldest_age_seconds", 'status="broadcast"'),
    ).toBe(0);
    // WithdrawalNotFinalized reads how long the oldest has been in its status, not since its request.
    const confirmedFor = await series(
      registry,
      "custody_withdrawal_oldest_in_status_seconds",
      'status="confirmed"',
    );
    expect(confirmedFor).toBeGreaterThanOrEqual(4 * 3600);
    expect(confirmedFor).toBeLessThan(5 * 3600);
    expect(
      await series(registry, "custody_withdrawal_oldest_age_seconds", 'status="confirmed"'),
    ).toBeGreaterThanOrEqual(2 * 86400);
    expect(
      await series(registry, "custody_withdrawal_oldest_in_status_seconds", 'status="broadcast"'),
    ).toBe(0);
    // WithdrawalStuck reads how long the oldest one out has not been mined, in either status.
    const unmined = await series(
      registry,
      "custody_withdrawal_oldest_unmined_seconds",
      'chain_id="31337"',
    );
    expect(unmined).toBeGreaterThanOrEqual(90 * 60);
    expect(unmined).toBeLessThan(2 * 3600);

    expect(await series(registry, "custody_hot_wallet_floor_wei", 'chain_id="31337"')).toBe(1e18);
    expect(await series(registry, "custody_hot_wallet_ceiling_wei", 'chain_id="31337"')).toBe(5e18);
    // HotWalletNotServed compares it with the wallets signer tasks report.
    expect(await series(registry, "custody_hot_wallets_configured", 'chain_id="31337"')).toBe(2);
  });

  it("exports no withdrawal figure while Postgres cannot answer (not a false zero)", async () => {
    const gone = await createTestDatabase({ migrate: false });
    await gone.pool.end();
    const registry = new Registry();
    registerStateMetrics(registry, { pool: gone.pool, chains: [] });
    expect(
      await series(registry, "custody_withdrawals", 'status="pending_approval"'),
    ).toBeUndefined();
    expect(
      await series(registry, "custody_withdrawal_oldest_unmined_seconds", 'chain_id="31337"'),
    ).toBeUndefined();
    await gone.drop();
  });
});

describe("state metrics (attestations in flight, by the signer's status of their transaction)", () => {
  let db: TestDatabase;
  const hot = `0x${"2".repeat(40)}`;
  const attestor = `0x${"3".repeat(40)}`;

  /** An attestation handed to the signer (one transaction, as attest.ts writes it), at `block`. */
  async function attestation(chainId: number, block: number, status = "requested") {
    const requestId = `attest:${chainId}:${zero}:${block}`;
    await withTransaction(db.pool, async (c) => {
      const r = await c.query<{ id: string }>(
        `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
           reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
           addresses, request_id, status)
         VALUES ($1, $2, $3, $4, 1, $5, 0, 0, $6, $6, $6, 0, '[]', $7, $8) RETURNING id`,
        [
          chainId,
          `${chainId}:${zero}`,
          zero,
          block,
          attestor,
          `0x${"0".repeat(64)}`,
          requestId,
          status,
        ],
      );
      await requestTransaction(c, {
        id: requestId,
        chainId,
        from: hot,
        to: attestor,
        value: 0n,
        data: "0x",
        kind: "attestation",
        refId: r.rows[0]!.id,
      });
    });
    return requestId;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("counts a chain's attestation stuck in receipt_unknown or needs_review (it stops the chain's attestation), not a confirmed one", async () => {
    const stuck = await attestation(31337, 100);
    await setTxRequestState(db.pool, stuck, { status: "receipt_unknown", nonce: 4 });
    const review = await attestation(31338, 200);
    await setTxRequestState(db.pool, review, { status: "needs_review", nonce: 9 });
    const done = await attestation(31337, 50, "confirmed");
    await setTxRequestState(db.pool, done, {
      status: "confirmed",
      nonce: 3,
      txHash: `0x${"4".repeat(64)}`,
      block: 60,
    });

    const registry = new Registry();
    registerStateMetrics(registry, { pool: db.pool, chains: [] });
    const inFlight = (chainId: number, status: string) =>
      series(
        registry,
        "custody_attestations_in_flight",
        `chain_id="${chainId}",status="${status}"`,
      );
    expect(await inFlight(31337, "receipt_unknown")).toBe(1);
    expect(await inFlight(31338, "needs_review")).toBe(1);
    // The confirmed one is not in flight; nothing else is.
    expect(await inFlight(31337, "confirmed")).toBeUndefined();
    expect(await inFlight(31337, "needs_review")).toBeUndefined();

    // Once the operator has worked it (the request failed, the attestation settled as failed), it is gone.
    await db.pool.query("UPDATE attest.attestations SET status = 'failed' WHERE request_id = $1", [
      stuck,
    ]);
    expect(await inFlight(31337, "receipt_unknown")).toBeUndefined();
  });

  it("gives each scheduled chain's attestation age (since its newest confirmed one) and the bound past which it is overdue", async () => {
    const chain = (chainId: number, attestation?: { everyBlocks: number; intervalMs: number }) =>
      chainEntry(chainId, attestation ? { attestation } : {});
    const schedule = { everyBlocks: 600, intervalMs: 60_000 }; // due every 10 minutes
    const config = parseFileConfig(chainSchema, {
      chains: [
        chain(31401, schedule), // stopped 5 hours ago
        chain(31402, schedule), // attested 10 minutes ago
        chain(31403, schedule), // never attested
        chain(31404), // not attested by schedule
      ],
    });
    const confirmedAgo = async (chainId: number, block: number, ago: string) => {
      const requestId = await attestation(chainId, block, "confirmed");
      await db.pool.query(
        "UPDATE attest.attestations SET confirmed_at = now() - $2::interval WHERE request_id = $1",
        [requestId, ago],
      );
    };
    await confirmedAgo(31401, 1000, "6 hours");
    await confirmedAgo(31401, 1600, "5 hours");
    // Neither a later one still being sent nor a failed one is an attestation dApps can read.
    await attestation(31401, 2200, "requested");
    await attestation(31401, 2800, "failed");
    await confirmedAgo(31402, 1000, "10 minutes");
    await confirmedAgo(31404, 1000, "9 hours");

    const registry = new Registry();
    registerStateMetrics(registry, { pool: db.pool, chains: config.chains });
    const age = (chainId: number) =>
      series(registry, "custody_attestation_age_seconds", `chain_id="${chainId}"`);
    const bound = (chainId: number) =>
      series(registry, "custody_attestation_overdue_after_seconds", `chain_id="${chainId}"`);

    // 3 x the schedule (600 blocks of 1 s, looked at every minute) + 1 hour for finality and recon.
    expect(await bound(31401)).toBe(3 * 600 + 3600);
    const stopped = await age(31401);
    expect(stopped).toBeGreaterThanOrEqual(5 * 3600);
    expect(stopped).toBeLessThan(5 * 3600 + 600);
    expect(stopped).toBeGreaterThan((await bound(31401))!); // AttestationOverdue
    const recent = await age(31402);
    expect(recent).toBeGreaterThanOrEqual(600);
    expect(recent).toBeLessThan((await bound(31402))!);
    // Never attested: no attestation for dApps to read at all.
    expect(await age(31403)).toBe(Number.POSITIVE_INFINITY);
    // A chain without a schedule is not expected to be attested.
    expect(await age(31404)).toBeUndefined();
    expect(await bound(31404)).toBeUndefined();

    // Postgres out: no age rather than a false one (the bound is the config's).
    const gone = await createTestDatabase({ migrate: false });
    await gone.pool.end();
    const out = new Registry();
    registerStateMetrics(out, { pool: gone.pool, chains: config.chains });
    expect(
      await series(out, "custody_attestation_age_seconds", 'chain_id="31403"'),
    ).toBeUndefined();
    expect(await series(out, "custody_attestation_overdue_after_seconds", 'chain_id="31403"')).toBe(
      5400,
    );
    await gone.drop();
  });
});

describe("state metrics' attestation reads at years of attestations", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("read a few pages of attest.attestations per scrape, not the whole table", async () => {
    // Three chains of three assets each, attested hourly for a year, each row with the custody
    // addresses' balances; one attestation per chain still in flight.
    await seedYearOfAttestations(db.pool, {
      newest: { 31501: "requested", 31502: "requested", 31503: "requested" },
    });
    const chains = parseFileConfig(chainSchema, {
      chains: [31501, 31502, 31503].map((chainId) =>
        chainEntry(chainId, { attestation: { everyBlocks: 3600, intervalMs: 3_600_000 } }),
      ),
    }).chains;

    // One connection, so its statistics can be flushed before they are read.
    const scraper = createPool(db.url, { max: 1 });
    try {
      const registry = new Registry();
      registerStateMetrics(registry, { pool: scraper, chains });
      const pagesRead = () => tablePagesRead(scraper, db.pool, "attest.attestations");
      await registry.metrics(); // plans and catalog caches warmed
      const before = await pagesRead();
      const text = await registry.metrics();
      const after = await pagesRead();

      // The figures are right ...
      expect(text).toMatch(/custody_attestation_age_seconds\{chain_id="31501"\} 36\d\d/);
      // ... and read from a few index pages per chain, not the ~20k pages of a year's rows.
      const pages = after.pages - before.pages;
      expect(after.seqScans - before.seqScans, `${pages} pages read`).toBe(0);
      expect(pages).toBeLessThan(60);
    } finally {
      await scraper.end();
    }
  });
});
