/**
 * The reconciler role attests on its own (issue 17): with `chains[].attestation` configured, the
 * service running every role but with no call from the test attests the newest clean
 * reconciliation run's block through the signer, and the attestation confirms with its gas booked.
 */

import { zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain } from "../../chains/index.js";
import { type CustodyTest, prepareTestCustody, startCustodyTest } from "../../ops/e2e/setup.js";
import { type Service, startService } from "../../ops/start.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createReconciler } from "../recon/reconcile.js";
import { fundAndDeployAttestor, waitFinalInIndex } from "../recon/testing/attestedCustody.js";

let t: CustodyTest;
let service: Service | undefined;

beforeAll(async () => {
  t = await startCustodyTest();
}, 60_000);
afterAll(async () => {
  await service?.stop();
  await t?.cleanup();
});

describe("reconciler role: attestation step", () => {
  it("attests the newest clean run's block on the configured schedule, through the signer", async () => {
    const { ctx, kms, chain, client, mine } = t;
    const pool = ctx.db.pool;
    const prepared = await prepareTestCustody(ctx, kms, { policies: "config" });
    await fundAndDeployAttestor({
      common: ctx.common,
      pool,
      chain,
      client,
      kmsEndpoint: kms.url,
      prepared,
    });
    const scheduled = { ...chain, attestation: { everyBlocks: 1, intervalMs: 1000 } };
    service = await startService(Object.freeze({ ...prepared.config, chains: [scheduled] }), {
      roles: ["indexer", "worker", "signer", "reconciler"],
    });

    // A clean run at a final block (the role's own runs stay 30 s behind; this one is newer).
    const head = Number(await client.getBlockNumber());
    await waitFinalInIndex({ pool, chain, block: head, mine });
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
    }).run({
      chain,
      block: head,
    });
    expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);

    const attested = await waitFor(
      `the role's attestation of block ${head} confirmed`,
      async () => {
        await mine();
        const r = await pool.query<{
          token: string;
          run_id: string;
          tx_hash: string;
          reserves: bigint;
        }>(
          `SELECT token, run_id::text, tx_hash, reserves FROM attest.attestations
            WHERE block_number = $1 AND status = 'confirmed'`,
          [head],
        );
        return r.rows.length > 0 ? r.rows : undefined;
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    expect(attested).toEqual([
      {
        token: zeroAddress,
        run_id: String(run.runId),
        tx_hash: expect.stringMatching(/^0x/),
        reserves: expect.any(BigInt),
      },
    ]);
    expect(attested[0]!.reserves).toBeGreaterThan(0n);
    const receipt = await client.getTransactionReceipt({
      hash: attested[0]!.tx_hash as `0x${string}`,
    });
    expect(receipt.status).toBe("success");
    const fee = await pool.query<{ amount: bigint }>(
      "SELECT amount FROM ledger.transfers WHERE kind = 'fee' AND tx_hash = $1",
      [attested[0]!.tx_hash],
    );
    expect(fee.rows).toEqual([{ amount: receipt.gasUsed * receipt.effectiveGasPrice }]);
  }, 180_000);
});
