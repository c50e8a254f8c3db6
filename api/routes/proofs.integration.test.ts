/**
 * GET /v1/customers/{id}/liabilities-proof: the proof served for the latest confirmed attestation
 * verifies with the shared verifier against that attestation; bad input is problem+json and
 * changes nothing; no attestation or no leaf is a 404. The attestation rows are written by the
 * attest module's own tables (the on-chain path is covered by ledger/attest/attest.integration).
 */
import { zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSalts } from "../../ledger/attest/attest.js";
import { buildMerkleSumTree } from "../../ledger/attest/merkleSum.js";
import { verifyProof } from "../../ops/por/verify.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";

let t: ApiTestContext;
const ASSET = `31337:${zeroAddress}`;

async function seedAttestation(
  block: number,
  status: "confirmed" | "requested",
  balances: Record<string, bigint>,
) {
  const pool = t.ctx.db.pool;
  const salts = await ensureSalts(pool, ASSET, Object.keys(balances));
  const tree = buildMerkleSumTree(
    Object.entries(balances).map(([customerId, balance]) => ({
      customerId,
      balance,
      salt: salts.get(customerId)!,
    })),
  );
  const r = await pool.query<{ id: string }>(
    `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
       reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count, addresses,
       request_id, status, tx_hash)
     VALUES (31337, $1, $2, $3, 1, $4, $5, $5, $6, $7, $7, $8, '[]', $9, $10, $11) RETURNING id`,
    [
      ASSET,
      zeroAddress,
      block,
      "0x00000000000000000000000000000000000000aa",
      tree.root.sum.toString(),
      tree.root.hash,
      `0x${"11".repeat(32)}`,
      tree.leaves.length,
      `attest:31337:${zeroAddress}:${block}`,
      status,
      `0x${block.toString(16).padStart(64, "0")}`,
    ],
  );
  await pool.query(
    `INSERT INTO attest.leaves (attestation_id, customer_id, balance)
     SELECT $1, x.c, x.b::numeric FROM unnest($2::text[], $3::text[]) AS x(c, b)`,
    [r.rows[0]!.id, Object.keys(balances), Object.values(balances).map(String)],
  );
  return tree;
}

beforeAll(async () => {
  t = await createApiTestContext();
}, 60_000);
afterAll(async () => {
  await t?.cleanup();
});

const get = (customer: string, query: string, key = t.keys["ledger:read"]) =>
  t.call(key, { method: "GET", url: `/v1/customers/${customer}/liabilities-proof${query}` });

describe("GET /v1/customers/{id}/liabilities-proof", () => {
  it("404 before any confirmed attestation", async () => {
    const res = await get("alice", `?asset=${ASSET}`);
    expect(res.statusCode).toBe(404);
    expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: "RESOURCE_NOT_FOUND" });
  });

  it("serves every customer's proof of the latest confirmed attestation, and it verifies", async () => {
    await seedAttestation(10, "confirmed", { alice: 5n, bob: 3n });
    const latest = await seedAttestation(20, "confirmed", { alice: 7n, bob: 3n, carol: 11n });
    await seedAttestation(30, "requested", { alice: 1n }); // not yet on chain: not served
    const attestation = {
      asset: zeroAddress,
      block: "20",
      reserves: "21",
      liabilities: latest.root.sum.toString(),
      liabilitiesRoot: latest.root.hash,
    };
    for (const [customer, balance] of [
      ["alice", "7"],
      ["bob", "3"],
      ["carol", "11"],
    ] as const) {
      const res = await get(customer, `?asset=${ASSET}`);
      expect(res.statusCode, res.body).toBe(200);
      const proof = res.json();
      expect(proof).toMatchObject({ customerId: customer, balance, block: "20", assetId: ASSET });
      const verdict = verifyProof(proof, attestation);
      expect(verdict.checks.filter((c) => !c.ok)).toEqual([]);
      expect(verdict.ok).toBe(true);
    }
    const dave = await get("dave", `?asset=${ASSET}`);
    expect(dave.statusCode).toBe(404);
    expect(dave.json().detail ?? dave.json().title).toMatch(/leaf/);
  });

  it("bad input is problem+json naming the field", async () => {
    const malformed = await get("alice", "?asset=eth");
    expect(malformed.statusCode).toBe(400);
    expect(malformed.headers["content-type"]).toMatch(/application\/problem\+json/);
    const missing = await get("alice", "");
    expect(missing.statusCode).toBe(400);
    const unknown = await get("alice", `?asset=31337:0x${"ab".repeat(20)}`);
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ code: "UNKNOWN_ASSET" });
    expect(JSON.stringify(unknown.json())).toContain("querystring.asset");
    const extra = await get("alice", `?asset=${ASSET}&x=1`);
    expect(extra.statusCode).toBe(400);
  });

  it("needs the ledger:read scope", async () => {
    expect((await get("alice", `?asset=${ASSET}`, null as unknown as string)).statusCode).toBe(401);
    expect((await get("alice", `?asset=${ASSET}`, t.keys["deposits:write"])).statusCode).toBe(403);
  });
});
