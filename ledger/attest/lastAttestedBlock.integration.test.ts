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
import { seedYearOfAttestations, YEAR_OF_HOURS } from "../recon/testing/attestedCustody.js";
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
    await seedYearOfAttestations(db.pool, { failedEvery: 50, newest: { 31502: "failed" } });
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
      expect(last).toEqual([YEAR_OF_HOURS, YEAR_OF_HOURS - 1, null]);
      const pages = after.pages - before.pages;
      expect(after.seqScans - before.seqScans, `${pages} pages read`).toBe(0);
      expect(pages).toBeLessThan(30);
    } finally {
      await attestor.end();
    }
  });
});
