/**
 * GET /v1/recon/breaks pages with a cursor (`after` = the last identity of the previous page), as
 * the other lists do: a list cut at its limit goes on where it stopped, however many runs see the
 * same breaks again meanwhile (each one touches every open break of its chain). Read test: the
 * runs and break states are what the reconciler stores (real Postgres). An acknowledgement or a
 * resolution retried under its Idempotency-Key after its answer was lost gets the decision's
 * answer, even when a later run reopened the break meanwhile: it is not applied to a difference
 * the operator never saw.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../../foundation/db.js";
import { trackBreakStates } from "../../ledger/recon/breakStates.js";
import type { Break } from "../../ledger/recon/types.js";
import { revokeApiKey } from "../apiKeys.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { answerLost } from "../testing/lostAnswer.js";

let t: ApiTestContext;
beforeAll(async () => {
  t = await createApiTestContext();
});
afterAll(async () => {
  await t?.cleanup();
});

/** A completed run of `chainId`: its id. */
const run = async (chainId: number) =>
  Number(
    (
      await t.ctx.db.pool.query<{ id: string }>(
        `INSERT INTO recon.runs (chain_id, block_number, mode, status, finished_at)
         VALUES ($1, 7, 'full', 'completed', now()) RETURNING id`,
        [chainId],
      )
    ).rows[0]!.id,
  );

/** `n` open breaks of `chainId` first found by `runId`: their identities. */
const breaks = async (chainId: number, runId: number, n: number) =>
  (
    await t.ctx.db.pool.query<{ identity: string }>(
      `INSERT INTO recon.break_states (identity, chain_id, type, asset_id, key, state,
         first_run_id, last_run_id, last_difference)
       SELECT 'missing_credit|' || $1::text || '|' || $1::text || ':0x0|tx' || $2::text || '-' || g,
              $1::bigint, 'missing_credit', $1::text || ':0x0', 'tx' || $2::text || '-' || g, 'open',
              $2::bigint, $2::bigint, g
         FROM generate_series(1, $3) g RETURNING identity`,
      [chainId, runId, n],
    )
  ).rows.map((r) => r.identity);

type Listed = { identity: string; firstRunId: number };
const page = async (query: string) => {
  const res = await t.call(t.keys["recon:read"], {
    method: "GET",
    url: `/v1/recon/breaks?${query}`,
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().breaks as Listed[];
};

describe("GET /v1/recon/breaks paging", () => {
  it("goes on after the last identity of a page to the end, newest first, while runs touch the breaks", async () => {
    const first = await run(31337);
    const second = await run(31338);
    const seeded = [...(await breaks(31337, first, 3)), ...(await breaks(31338, second, 4))];
    const all = await page("limit=1000");
    expect(all.map((b) => b.identity).sort()).toEqual([...seeded].sort());
    // Newest first: the breaks the newest run found before the older run's.
    expect(all.map((b) => b.firstRunId)).toEqual(
      [...all.map((b) => b.firstRunId)].sort((a, b) => b - a),
    );

    const pages: Listed[][] = [await page("limit=3")];
    while (pages.at(-1)!.length === 3) {
      // A run of each chain sees its breaks again between two pages (as the reconciler does each
      // minute): the list goes on where it stopped all the same.
      await t.ctx.db.pool.query(
        "UPDATE recon.break_states SET updated_at = clock_timestamp() WHERE chain_id = $1",
        [pages.length % 2 === 0 ? 31337 : 31338],
      );
      pages.push(await page(`limit=3&after=${encodeURIComponent(pages.at(-1)!.at(-1)!.identity)}`));
    }
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat().map((b) => b.identity)).toEqual(all.map((b) => b.identity));
  });

  it("pages within the filters, and refuses a malformed cursor naming the field", async () => {
    const onChain = (await page("chain_id=31337&limit=1000")).map((b) => b.identity);
    expect(onChain).toHaveLength(3);
    const rest = await page(`chain_id=31337&limit=1000&after=${encodeURIComponent(onChain[0]!)}`);
    expect(rest.map((b) => b.identity)).toEqual(onChain.slice(1));

    const bad = await t.call(t.keys["recon:read"], {
      method: "GET",
      url: "/v1/recon/breaks?after=has%20space",
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers["content-type"]).toContain("application/problem+json");
    expect(bad.json().errors[0].field).toBe("querystring.after");
    expect(bad.json().detail).not.toContain("additional properties");
  });
});

describe("POST /v1/recon/breaks/:break/resolve --fixed-by a chain fact", () => {
  /** A fact of `txHash` at position `fee`, seen in block `n` with `status`. */
  const fact = (txHash: string, n: number, status: "confirmed" | "orphaned") =>
    t.ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status, orphaned_at)
       VALUES (31337, $1, $2, $3, 0, 'fee', 'fee', '0x0000000000000000000000000000000000000000',
         '0x00000000000000000000000000000000000000aa', '0x0000000000000000000000000000000000000000',
         21000, $4, CASE WHEN $4 = 'orphaned' THEN now() END)`,
      [n, `0x${n.toString(16).padStart(64, "0")}`, txHash, status],
    );
  const resolve = (identity: string, fixedBy: string) =>
    t.call(t.keys.admin, {
      method: "POST",
      url: `/v1/recon/breaks/${encodeURIComponent(identity)}/resolve`,
      payload: { reason: "gas booked", fixedBy },
      headers: { "idempotency-key": randomUUID() },
    });

  it("refuses a fact a reorg orphaned (no longer on our chain), naming the field", async () => {
    const [identity] = await breaks(31337, await run(31337), 1);
    const tx = `0x${"ab".repeat(32)}`;
    await fact(tx, 900, "orphaned");
    const res = await resolve(identity!, `${tx}:fee`);
    expect([res.statusCode, res.json().code, res.json().field]).toEqual([
      422,
      "RECON_BREAK_FIX_ORPHANED",
      "fixedBy",
    ]);
    const state = await t.ctx.db.pool.query<{ state: string }>(
      "SELECT state FROM recon.break_states WHERE identity = $1",
      [identity],
    );
    expect(state.rows[0]!.state).toBe("open");
  });

  it("accepts the same fact once it is re-included in a canonical block", async () => {
    const [identity] = await breaks(31337, await run(31337), 1);
    const tx = `0x${"cd".repeat(32)}`;
    await fact(tx, 901, "orphaned");
    await fact(tx, 902, "confirmed");
    const res = await resolve(identity!, `${tx}:fee`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ state: "resolved", resolvedRef: `fact:${tx}:fee` });
  });
});

describe("an acknowledgement or resolution retried after its answer was lost", () => {
  const decide = (
    identity: string,
    action: "acknowledge" | "resolve",
    idem: string,
    payload: object,
    key = t.keys.admin,
  ) =>
    t.call(key, {
      method: "POST",
      url: `/v1/recon/breaks/${encodeURIComponent(identity)}/${action}`,
      payload,
      headers: { "idempotency-key": idem },
    });
  /** A later completed run of chain 31337 that finds the break again, with `difference`. */
  const foundAgain = async (identity: string, difference: bigint) => {
    const runId = await run(31337);
    const [type, , assetId, key] = identity.split("|") as [string, string, string, string];
    const found: Break = {
      type: type as Break["type"],
      assetId,
      key,
      facts: [],
      entries: [],
      chainAmount: 0n,
      ledgerAmount: difference,
      difference,
      action: "look at it",
    };
    await withTransaction(t.ctx.db.pool, (client) =>
      trackBreakStates(client, { runId, chainId: 31337, breaks: [found], identities: [identity] }),
    );
    return runId;
  };
  const stateOf = async (identity: string) =>
    (
      await t.ctx.db.pool.query<{ state: string; last_run_id: string }>(
        "SELECT state, last_run_id FROM recon.break_states WHERE identity = $1",
        [identity],
      )
    ).rows[0];
  const audited = async (identity: string, action: string) =>
    (
      await t.ctx.db.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM audit.audit_log WHERE entity_id = $1 AND action = $2",
        [identity, action],
      )
    ).rows[0]!.n;

  it("resolve: a later run reopened the break; the retry gets the resolution, the break stays open", async () => {
    const [identity] = await breaks(31337, await run(31337), 1);
    const tx = `0x${"ef".repeat(32)}`;
    await t.ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       VALUES (31337, 903, $1, $2, 0, 'fee', 'fee', '0x0000000000000000000000000000000000000000',
         '0x00000000000000000000000000000000000000aa', '0x0000000000000000000000000000000000000000',
         21000, 'confirmed')`,
      [`0x${(903).toString(16).padStart(64, "0")}`, tx],
    );
    const body = { reason: "gas booked", fixedBy: `${tx}:fee` };
    const first = await decide(identity!, "resolve", "resolve-lost", body);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().state).toBe("resolved");
    await answerLost(t.ctx.db.pool, "resolve-lost");
    const reopenedBy = await foundAgain(identity!, 7n);
    expect(await stateOf(identity!)).toMatchObject({ state: "open" });

    const retry = await decide(identity!, "resolve", "resolve-lost", body);
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect(await stateOf(identity!)).toEqual({ state: "open", last_run_id: String(reopenedBy) });
    expect(await audited(identity!, "recon.break.resolved")).toBe(1);
  });

  it("acknowledge: a later run found another difference; the retry gets the acknowledgement, the break stays open", async () => {
    const [identity] = await breaks(31337, await run(31337), 1);
    const body = { reason: "known, booked tomorrow" };
    const first = await decide(identity!, "acknowledge", "ack-lost", body);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ state: "acknowledged", acknowledgedDifference: "1" });
    await answerLost(t.ctx.db.pool, "ack-lost");
    await foundAgain(identity!, 9n);
    expect(await stateOf(identity!)).toMatchObject({ state: "open" });

    const retry = await decide(identity!, "acknowledge", "ack-lost", body);
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect(await stateOf(identity!)).toMatchObject({ state: "open" });
    expect(await audited(identity!, "recon.break.acknowledged")).toBe(1);
  });

  it("resolve retried under the rotated key of the same owner (the old one revoked since): the resolution's answer, the reopened break stays open", async () => {
    // old code: expected { last_run_id: '10', state: 'resolved' } to deeply equal { state: 'open',
    // last_run_id: '10' } (the retry under the new key found no record under it: it resolved the
    // reopened break again, a difference the operator never saw)
    const old = await t.newKey("ops-rotating-a", ["admin"]);
    const rotated = await t.newKey("ops-rotating-a", ["admin"]);
    const [identity] = await breaks(31337, await run(31337), 1);
    const tx = `0x${"e1".repeat(32)}`;
    await t.ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       VALUES (31337, 904, $1, $2, 0, 'fee', 'fee', '0x0000000000000000000000000000000000000000',
         '0x00000000000000000000000000000000000000aa', '0x0000000000000000000000000000000000000000',
         21000, 'confirmed')`,
      [`0x${(904).toString(16).padStart(64, "0")}`, tx],
    );
    const body = { reason: "gas booked", fixedBy: `${tx}:fee` };
    const first = await decide(identity!, "resolve", "rot-resolve-lost", body, old);
    expect(first.statusCode, first.body).toBe(200);
    await answerLost(t.ctx.db.pool, "rot-resolve-lost");
    const reopenedBy = await foundAgain(identity!, 7n);
    expect(await revokeApiKey(t.ctx.db.pool, /^cn_([0-9a-f]{16})_/.exec(old)![1]!)).toBe(true);

    const retry = await decide(identity!, "resolve", "rot-resolve-lost", body, rotated);
    expect(retry.statusCode, retry.body).toBe(200);
    expect(await stateOf(identity!)).toEqual({ state: "open", last_run_id: String(reopenedBy) });
    expect(retry.json()).toEqual(first.json());
    expect(await audited(identity!, "recon.break.resolved")).toBe(1);
  });

  it("acknowledge under the rotated key: its answer; with another body IDEMPOTENCY_KEY_REUSED from the decision's own record; another owner's same key is its own", async () => {
    // old code: expected 200 to be 409 (the other body, its HTTP record gone, acknowledged the
    // break again under the new key: acknowledgedDifference 9, a second audit entry)
    const old = await t.newKey("ops-rotating-b", ["admin"]);
    const rotated = await t.newKey("ops-rotating-b", ["admin"]);
    const [identity] = await breaks(31337, await run(31337), 1);
    const body = { reason: "known, booked tomorrow" };
    const first = await decide(identity!, "acknowledge", "rot-ack", body, old);
    expect(first.statusCode, first.body).toBe(200);
    await foundAgain(identity!, 9n);
    // The HTTP record gone (as a revision before api/idempotency.ts kept a 5xx's key left it):
    // only the decision's own record can tell.
    await t.ctx.db.pool.query("DELETE FROM api.idempotency_keys WHERE idempotency_key = $1", [
      "rot-ack",
    ]);
    const other = await decide(identity!, "acknowledge", "rot-ack", { reason: "other" }, rotated);
    expect(other.statusCode, other.body).toBe(409);
    expect(other.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    const retry = await decide(identity!, "acknowledge", "rot-ack", body, rotated);
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect(await stateOf(identity!)).toMatchObject({ state: "open" });
    expect(await audited(identity!, "recon.break.acknowledged")).toBe(1);

    const theirs = await t.newKey("ops-other", ["admin"]);
    const own = await decide(identity!, "acknowledge", "rot-ack", body, theirs);
    expect(own.statusCode, own.body).toBe(200);
    expect(own.json()).toMatchObject({ state: "acknowledged", acknowledgedDifference: "9" });
  });
});
