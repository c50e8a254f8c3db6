/**
 * The attestor asks for the chain's newest attested block on every pass; attestations are hourly
 * per chain and asset and kept for good, so the answer must come from a few index pages, not a
 * read of the chain's whole history.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool } from "../../foundation/db.js";
import {
  createTestDatabase,
  type TestDatabase,
  tablePagesRead,
} from "../../ops/testing/database.js";
import { lastAttestedBlock } from "./attest.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe("lastAttestedBlock", () => {
  it("reads a few pages at a year of attestations, and skips failed ones", async () => {
    // Three chains of three assets each, attested hourly for a year (every 50th failed), each row
    // with the custody addresses' balances; chain 31502's newest attestation failed.
    const HOURS = 8760;
    await db.pool.query(
      `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
         reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
         addresses, request_id, status)
       SELECT c, c || ':' || t, t, h, h, $2, 1, 1, $3, $3, $3, 1, a.addresses,
              'attest:' || c || ':' || t || ':' || h,
              CASE WHEN h % 50 = 0 OR (c = 31502 AND h = $1) THEN 'failed' ELSE 'confirmed' END
         FROM generate_series(31501, 31503) c,
              (SELECT '0x' || lpad(to_hex(n), 40, '0') AS t FROM generate_series(0, 2) n) tokens,
              generate_series(1, $1) h,
              (SELECT jsonb_object_agg('0x' || lpad(to_hex(k), 40, '0'), '1000000000000000000')
                   AS addresses
                 FROM generate_series(1, 10) k) a`,
      [HOURS, `0x${"3".repeat(40)}`, `0x${"0".repeat(64)}`],
    );
    await db.pool.query("ANALYZE attest.attestations");
    // One connection, so its statistics can be flushed before they are read.
    const attestor = createPool(db.url, { max: 1 });
    try {
      const pagesRead = () => tablePagesRead(attestor, db.pool, "attest.attestations");
      await lastAttestedBlock(attestor, 31501); // plan and catalog caches warmed
      const before = await pagesRead();
      const last = await Promise.all(
        [31501, 31502, 31504].map((c) => lastAttestedBlock(attestor, c)),
      );
      const after = await pagesRead();
      expect(last).toEqual([HOURS, HOURS - 1, null]);
      const pages = after.pages - before.pages;
      expect(after.seqScans - before.seqScans, `${pages} pages read`).toBe(0);
      expect(pages).toBeLessThan(30);
    } finally {
      await attestor.end();
    }
  });
});
