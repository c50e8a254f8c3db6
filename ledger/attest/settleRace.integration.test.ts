/**
 * Settling runs outside the chain's lock (attest.ts tick: "safe beside another holder, each write
 * re-checks its row"): a reconciler whose lock went unheard settles on beside the one that took the
 * chain. One of them read the signer's outcome (mined as T1), then stalled; meanwhile a reorg took
 * T1 out, the signer's bumped attempt T2 mined, and the other settled it (T2's gas booked). The
 * stalled one must then book nothing: T1 is in no block, and its gas booked would be a fee the hot
 * wallet never paid (custody:hot below the chain, a fee transfer with no canonical fact). Real
 * Postgres and the signer's request intake and outcomes; the signer's row set by SQL to the states
 * its tracker records (signer/testing/txRequestState.ts), and the stalled settle held at a gate
 * after its read of the outcomes.
 */
import { type Hex, zeroAddress, zeroHash } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain } from "../../chains/index.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { freshAddress } from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { gate } from "../../ops/testing/gate.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { setTxRequestState } from "../../signer/testing/txRequestState.js";
import { createLedger } from "../createLedger.js";
import { ATTESTATION_KIND, createAttestor, ensureSalts, requestIdOf } from "./attest.js";
import { buildMerkleSumTree } from "./merkleSum.js";
import type { AttestationSender } from "./sender.js";

const A = 31337;
const HOT = freshAddress(621);
const ATTESTOR = freshAddress(622);
const assetId = `${A}:${zeroAddress}`;

let ctx: TestContext;
let pool: Pool;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: A }] });
  pool = ctx.db.pool;
  const ledger = createLedger({ common: ctx.common, pool });
  try {
    await ledger.ensureAssetsFromConfig(ctx.config.chains);
  } finally {
    await ledger.close();
  }
});

afterAll(async () => {
  await ctx?.cleanup();
});

/** Gas booked for a transaction, less what was given back. */
const gasBooked = async (tx: Hex) =>
  (
    await pool.query<{ net: string }>(
      `SELECT coalesce(sum(CASE WHEN d.name = 'fees:gas' THEN t.amount ELSE -t.amount END), 0)::text AS net
         FROM ledger.transfers t JOIN ledger.accounts d ON d.id = t.debit_account_id
        WHERE t.tx_hash = $1
           OR t.reverses_id IN (SELECT id FROM ledger.transfers WHERE tx_hash = $1)`,
      [tx],
    )
  ).rows[0]!.net;

describe("two reconcilers settling one attestation", () => {
  it("the one that read an outcome a reorg has since replaced books nothing for it", async () => {
    const chain = ctx.config.chains[0]!;
    const block = 900_301;
    const requestId = requestIdOf(A, zeroAddress, block);
    const salts = await ensureSalts(pool, assetId, ["erin"]);
    const tree = buildMerkleSumTree([
      { customerId: "erin", balance: 40n, salt: salts.get("erin")! },
    ]);
    const id = await withTransaction(pool, async (c) => {
      const inserted = await c.query<{ id: string }>(
        `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
           reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
           addresses, request_id)
         VALUES ($1, $2, $3, $4, 0, $5, 40, 40, $6, $7, $7, 1, '[]', $8) RETURNING id`,
        [
          A,
          assetId,
          zeroAddress,
          block,
          ATTESTOR.toLowerCase(),
          tree.root.hash,
          zeroHash,
          requestId,
        ],
      );
      const id = inserted.rows[0]!.id;
      await c.query(
        "INSERT INTO attest.leaves (attestation_id, customer_id, balance) VALUES ($1, 'erin', 40)",
        [id],
      );
      await requestTransaction(c, {
        id: requestId,
        chainId: A,
        from: HOT,
        to: ATTESTOR,
        value: 0n,
        data: "0x",
        kind: ATTESTATION_KIND,
        refId: id,
      });
      return id;
    });

    const T1 = `0x${"c1".repeat(32)}` as Hex;
    const T2 = `0x${"c2".repeat(32)}` as Hex;
    await setTxRequestState(pool, requestId, {
      status: "confirmed",
      txHash: T1,
      fee: 1000n,
      block: 900_400,
      nonce: 7,
    });

    // The stalled reconciler: its read of the outcomes answers, then it waits at the gate.
    const read = gate();
    const release = gate();
    let first = true;
    const stalledSender: AttestationSender = {
      requestTransaction,
      getTxOutcomes: async (c, params) => {
        const outcomes = await getTxOutcomes(c, params);
        if (first) {
          first = false;
          read.open();
          await release.wait;
        }
        return outcomes;
      },
    };
    const stalled = createAttestor({
      common: ctx.common,
      pool,
      sender: stalledSender,
      chains: adapterPerChain(ctx.common),
    });
    const other = createAttestor({
      common: ctx.common,
      pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(ctx.common),
    });

    const settling = stalled.settle(chain);
    await read.wait;
    // Meanwhile a reorg took T1 out and the signer's bumped attempt T2 mined (at another fee);
    // the reconciler holding the chain now settles that.
    await setTxRequestState(pool, requestId, {
      status: "confirmed",
      txHash: T2,
      fee: 1200n,
      block: 900_405,
      nonce: 7,
      reorgs: 1,
    });
    await other.settle(chain);
    expect(await gasBooked(T2)).toBe("1200");

    release.open();
    await settling;
    expect({ t1: await gasBooked(T1), t2: await gasBooked(T2) }).toEqual({ t1: "0", t2: "1200" });
    const row = await pool.query(
      "SELECT status, tx_hash, fee::text, booked_generation FROM attest.attestations WHERE id = $1",
      [id],
    );
    expect(row.rows[0]).toEqual({
      status: "confirmed",
      tx_hash: T2,
      fee: "1200",
      booked_generation: 1,
    });
  });
});
