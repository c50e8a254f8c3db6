/**
 * Booked sweeps in a run's expected balances, read through the injected SweepReader (the signer's
 * sweepReader) and the chain.facts view, against the single statement that used to read
 * custody.sweep_items and chain.transfers together (kept here as the oracle): the same
 * adjustments for every case that statement told apart, and the same active addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pool } from "../../foundation/db.js";
import { createTestDatabase, type TestDatabase } from "../../ops/testing/database.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { loadExpectedAdjustments, selectInflowAddresses } from "./inflows.js";

const CHAIN = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const TOKEN = `0x${"7".repeat(40)}`;
const HOT = `0x${"f".repeat(40)}`;
const hex = (n: number, w: number) => `0x${n.toString(16).padStart(w, "0")}`;
const addr = (i: number) => hex(0xa000 + i, 40);
const tx = (i: number) => hex(0xb000 + i, 64);

/** The statement recon ran before the reader (inflows.ts at bb01cad), verbatim. */
const ORACLE = `SELECT i.address, i.asset, sum(i.swept)::text AS amount
       FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
      WHERE i.chain_id = $1 AND s.status = 'booked' AND i.swept > 0 AND i.address = ANY($3::text[])
        AND EXISTS (SELECT 1 FROM chain.transfers t WHERE t.chain_id = $1 AND t.tx_hash = s.tx_hash
                      AND t.status <> 'orphaned' AND t.block_number <= $2)
        AND NOT EXISTS (SELECT 1 FROM chain.transfers t WHERE t.chain_id = $1 AND t.tx_hash = s.tx_hash
                      AND t.status <> 'orphaned' AND t.from_address = i.address AND t.asset = i.asset)
      GROUP BY i.address, i.asset`;

let db: TestDatabase;
let pool: Pool;
let factN = 0;

async function sweep(
  id: string,
  status: "open" | "booked" | "failed",
  txHash: string | null,
  items: [address: string, asset: string, swept: bigint | null][],
  settledAt: Date | null = status === "open" ? null : new Date("2026-01-02T00:00:00Z"),
) {
  await pool.query(
    `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens, status, tx_hash, settled_at)
     VALUES ($1, $2, $3, $3, '{}', $4, $5, $6)`,
    [id, CHAIN, HOT, status, txHash, settledAt],
  );
  for (const [address, asset, swept] of items)
    await pool.query(
      `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
       VALUES ($1, $2, $3, $4, $5, 0, $6)`,
      [id, CHAIN, address, hex(1, 64), asset, swept?.toString() ?? null],
    );
}

async function fact(
  txHash: string,
  block: number,
  from: string,
  asset: string,
  status: "confirmed" | "orphaned" = "confirmed",
) {
  factN++;
  await pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount, status)
     VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, 1, $10)`,
    [
      CHAIN,
      block,
      hex(block * 1000 + factN, 64),
      txHash,
      `log:${factN}`,
      asset === ZERO ? "internal" : "erc20",
      asset,
      from,
      HOT,
      status,
    ],
  );
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = db.pool;
  // 1: a native sweep no fact shows (no traces): counted once its tx has a fact at <= block.
  await sweep("s1", "booked", tx(1), [[addr(1), ZERO, 100n]]);
  await fact(tx(1), 10, HOT, ZERO); // the factory call's gas fee, say: another sender
  // 2: an ERC-20 sweep whose log is a fact from the address: not counted twice.
  await sweep("s2", "booked", tx(2), [
    [addr(2), TOKEN, 50n],
    [addr(2), ZERO, 7n],
  ]);
  await fact(tx(2), 11, addr(2), TOKEN);
  // 3: the tx's only fact is above the block; 4: only an orphaned fact.
  await sweep("s3", "booked", tx(3), [[addr(3), ZERO, 30n]]);
  await fact(tx(3), 25, HOT, ZERO);
  await sweep("s4", "booked", tx(4), [[addr(4), ZERO, 40n]]);
  await fact(tx(4), 12, HOT, ZERO, "orphaned");
  // 5: open and failed sweeps, a zero and an unset item.
  await sweep("s5", "open", null, [[addr(5), ZERO, null]]);
  await sweep("s6", "failed", tx(6), [[addr(5), ZERO, 9n]]);
  await fact(tx(6), 12, HOT, ZERO);
  await sweep("s7", "booked", tx(7), [
    [addr(5), ZERO, 0n],
    [addr(6), ZERO, 11n],
  ]);
  await fact(tx(7), 13, HOT, ZERO);
  // 6: two sweeps of one address and asset add up; the orphaned copy of a fact from the address
  // does not hide the item, the canonical one does.
  await sweep("s8", "booked", tx(8), [[addr(6), ZERO, 5n]], new Date("2026-01-03T00:00:00Z"));
  await fact(tx(8), 14, HOT, ZERO);
  await fact(tx(8), 13, addr(6), ZERO, "orphaned");
  await sweep("s9", "booked", tx(9), [[addr(7), ZERO, 3n]]);
  await fact(tx(9), 14, addr(7), ZERO, "orphaned");
  await fact(tx(9), 15, addr(7), ZERO);
  // 7: a booked sweep with no tx hash recorded (never counted).
  await sweep("s10", "booked", null, [[addr(8), ZERO, 13n]]);
});

afterAll(async () => {
  await db?.drop();
});

describe("booked sweeps through the SweepReader", () => {
  const addresses = Array.from({ length: 9 }, (_, i) => addr(i));
  for (const block of [9, 10, 12, 14, 30])
    it(`give the adjustments the one statement gave, at block ${block}`, async () => {
      const client = await pool.connect();
      try {
        const oracle = new Map<string, bigint>();
        for (const r of (
          await client.query<{ address: string; asset: string; amount: string }>(ORACLE, [
            CHAIN,
            block,
            addresses,
          ])
        ).rows)
          oracle.set(`${r.address}|${CHAIN}:${r.asset}`, -BigInt(r.amount));
        const got = await loadExpectedAdjustments(client, {
          chainId: CHAIN,
          block,
          addresses,
          sweeps: sweepReader,
        });
        expect(got).toEqual(oracle);
        if (block === 30)
          expect(got).toEqual(
            new Map([
              [`${addr(1)}|${CHAIN}:${ZERO}`, -100n],
              [`${addr(2)}|${CHAIN}:${ZERO}`, -7n],
              [`${addr(3)}|${CHAIN}:${ZERO}`, -30n],
              [`${addr(6)}|${CHAIN}:${ZERO}`, -16n],
            ]),
          );
      } finally {
        client.release();
      }
    });

  it("make an address active when a sweep of it settled since the previous run", async () => {
    for (let i = 0; i < 9; i++)
      await pool.query(
        `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
         VALUES ($1, $2, 'deposit', $3) ON CONFLICT DO NOTHING`,
        [CHAIN, addr(i), `c${i}`],
      );
    const client = await pool.connect();
    try {
      const previous = {
        id: 0,
        block: 100,
        factWatermark: 0,
        entryWatermark: 0,
        snapshotAt: new Date("2026-01-02T12:00:00Z"),
        reorgWatermark: 0,
        openKeys: [],
        openEntryIds: [],
        entryGaps: [],
      };
      const picked = await selectInflowAddresses(client, {
        chainId: CHAIN,
        block: 100,
        previous,
        custody: new Map(),
        sweeps: sweepReader,
        rotation: 0,
      });
      // Only s8 settled after the snapshot.
      expect(picked.addresses).toEqual([addr(6)]);
    } finally {
      client.release();
    }
  });
});
