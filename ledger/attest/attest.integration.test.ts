/**
 * Acceptance (issue 17, attestation and proofs): after deposits (the e2e scenario through the real
 * service), the reconciler's clean run at a final block is attested on chain through the signer;
 * the Attested event's sums equal the ledger and the chain; the attestation's gas is booked so the
 * next reconciliation stays clean; every customer's proof verifies against the event with the
 * shared verifier; a block whose reconciliation has an open break is not attested.
 */

import { getAddress, type Hex, parseAbiItem, parseEther, toHex, zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain } from "../../chains/index.js";
import { readFinalized } from "../../indexers/index.js";
import { runScenario } from "../../ops/e2e/scenario.js";
import { type CustodyTest, prepareTestCustody, startCustodyTest } from "../../ops/e2e/setup.js";
import { verifyProof } from "../../ops/por/verify.js";
import { type Service, startService } from "../../ops/start.js";
import { waitFor } from "../../ops/testing/wait.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createReconciler } from "../recon/reconcile.js";
import { fundAndDeployAttestor, waitFinalInIndex } from "../recon/testing/attestedCustody.js";
import { createAttestor } from "./attest.js";
import { liabilitiesProof } from "./proofs.js";

const ATTESTED = parseAbiItem(
  "event Attested(address indexed asset, uint256 indexed block, uint256 reserves, uint256 liabilities, bytes32 liabilitiesRoot, bytes32 addressesRoot, bytes32 reportHash)",
);

let t: CustodyTest;
let service: Service | undefined;

beforeAll(async () => {
  t = await startCustodyTest();
}, 60_000);
afterAll(async () => {
  await service?.stop();
  await t?.cleanup();
});

describe("attestation of reserves and liabilities", () => {
  it("attests a clean final block, sums equal ledger and chain, proofs verify; an open break blocks the next", async () => {
    const { ctx, kms, chain, client, rpc, mine } = t;
    const pool = ctx.db.pool;
    const prepared = await prepareTestCustody(ctx, kms);
    const contract = await fundAndDeployAttestor({
      common: ctx.common,
      pool,
      chain,
      client,
      kmsEndpoint: kms.url,
      prepared,
    });

    service = await startService(prepared.config, {
      roles: ["indexer", "worker", "signer", "api"],
    });
    await runScenario({
      url: service.url,
      pool,
      chain,
      hotWallet: prepared.hotWallet,
      tick: async () => {
        await mine();
      },
      timeoutMs: 90_000,
    });

    const finalIndexed = (block: number) => waitFinalInIndex({ pool, chain, block, mine });
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
    });
    const attestor = createAttestor({
      common: ctx.common,
      pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(ctx.common),
    });
    const schedule = { everyBlocks: 1 };

    // 1. A clean run after the deposits, at a block the confirmation rule (2 blocks) has reached
    // but the finality rule (the reorg window, 8) has not: a reorg could still take that block,
    // so it is not attested until the indexer publishes it final; then it is.
    const head = Number(await client.getBlockNumber());
    await waitFinalInIndex({ pool, chain, block: head, mine, rule: "confirmed" });
    const run = await reconciler.run({ chain, block: head, full: true });
    expect(run.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
    const published = await readFinalized(pool, chain.chainId);
    expect(Number(published?.number ?? -1)).toBeLessThan(head);
    expect(await attestor.tick(chain, schedule)).toMatchObject({
      attested: [],
      skipped: "not_final",
      runId: run.runId,
      block: head,
    });
    await finalIndexed(head);
    const tick = await attestor.tick(chain, schedule);
    expect(tick).toMatchObject({ runId: run.runId, block: head });
    expect(tick.attested.map((a) => a.token)).toEqual([zeroAddress]);
    const requested = tick.attested[0]!;

    await waitFor(
      "the attestation confirmed and its gas booked",
      async () => {
        await mine();
        await attestor.settle(chain);
        const r = await pool.query<{ status: string }>(
          "SELECT status FROM attest.attestations WHERE id = $1",
          [requested.id],
        );
        return r.rows[0]?.status === "confirmed" ? true : undefined;
      },
      { timeoutMs: 60_000, everyMs: 250 },
    );
    const row = await pool.query<{ tx_hash: Hex }>(
      "SELECT tx_hash FROM attest.attestations WHERE id = $1",
      [requested.id],
    );
    const txHash = row.rows[0]!.tx_hash;
    const receipt = await client.getTransactionReceipt({ hash: txHash });
    expect(getAddress(receipt.from)).toBe(getAddress(prepared.hotWallet));

    // 2. The event's figures equal the ledger and the chain, independently summed here.
    const logs = await client.getLogs({
      address: contract.address,
      event: ATTESTED,
      fromBlock: 0n,
      toBlock: "latest",
    });
    expect(logs).toHaveLength(1);
    const ev = logs[0]!.args;
    expect(logs[0]!.transactionHash).toBe(txHash);
    expect(ev.asset).toBe(zeroAddress);
    expect(ev.block).toBe(BigInt(head));
    const owed = await pool.query<{ total: bigint; n: string }>(
      `SELECT sum(credits_posted - debits_posted) AS total, count(*)::text AS n
         FROM ledger.accounts WHERE asset_id = $1 AND kind = 'user'`,
      [`${chain.chainId}:${zeroAddress}`],
    );
    expect(ev.liabilities).toBe(owed.rows[0]!.total);
    expect(ev.liabilities).toBeGreaterThan(0n);
    const custody = await pool.query<{ address: Hex }>(
      "SELECT address FROM chain.custody_addresses WHERE chain_id = $1",
      [chain.chainId],
    );
    expect(custody.rows.length).toBeGreaterThanOrEqual(3); // the hot wallet and two deposit addresses
    let held = 0n;
    for (const c of custody.rows)
      held += await client.getBalance({ address: c.address, blockNumber: BigInt(head) });
    expect(ev.reserves).toBe(held);
    expect(ev.reserves).toBeGreaterThanOrEqual(ev.liabilities!);
    expect(ev.liabilitiesRoot).toBe(requested.liabilitiesRoot);
    expect(ev.reportHash).toBe(requested.reportHash);

    // 3. Every customer's proof (from the stored leaves) verifies against the event.
    const attestation = {
      asset: ev.asset,
      block: ev.block!.toString(),
      reserves: ev.reserves!.toString(),
      liabilities: ev.liabilities!.toString(),
      liabilitiesRoot: ev.liabilitiesRoot,
    };
    const customers = await pool.query<{ name: string }>(
      "SELECT name FROM ledger.accounts WHERE asset_id = $1 AND kind = 'user' ORDER BY name",
      [`${chain.chainId}:${zeroAddress}`],
    );
    expect(customers.rows.map((c) => c.name)).toEqual(["user:alice", "user:bob"]);
    for (const c of customers.rows) {
      const found = await liabilitiesProof(pool, {
        customerId: c.name.slice(5),
        assetId: `${chain.chainId}:${zeroAddress}`,
      });
      if (!found.found) throw new Error(`no proof for ${c.name}: ${found.reason}`);
      const result = verifyProof(found.proof, attestation);
      expect(
        result.checks.filter((x) => !x.ok),
        c.name,
      ).toEqual([]);
      expect(result.ok).toBe(true);
      expect(found.proof.txHash).toBe(txHash);
    }
    expect(
      await liabilitiesProof(pool, {
        customerId: "nobody",
        assetId: `${chain.chainId}:${zeroAddress}`,
      }),
    ).toEqual({ found: false, reason: "no_leaf" });

    // 4. The attestation's own transaction reconciles: its gas was booked as a fee.
    const afterAttest = Number(receipt.blockNumber);
    await finalIndexed(afterAttest);
    const clean = await reconciler.run({ chain, block: afterAttest });
    expect(clean.breaks.map((b) => `${b.type}: ${b.action}`)).toEqual([]);
    const fee = await pool.query<{ amount: bigint }>(
      "SELECT amount FROM ledger.transfers WHERE kind = 'fee' AND tx_hash = $1",
      [txHash],
    );
    expect(fee.rows).toEqual([{ amount: receipt.gasUsed * receipt.effectiveGasPrice }]);
    // The schedule: a clean run fewer than everyBlocks past the last attested block is not due.
    expect(await attestor.tick(chain, { everyBlocks: 1000 })).toMatchObject({
      attested: [],
      skipped: "not_due",
      runId: clean.runId,
      detail: `last attested block ${head}, next at ${head + 1000}`,
    });

    // 5. Value nothing explains lands in the hot wallet: that block's run has an open break, and
    // the attestor does not attest it (nor any block while it is the newest run).
    const [stranger] = ((await rpc<Hex[]>("eth_accounts")) as Hex[]).slice(8);
    const stray = await rpc<Hex>("eth_sendTransaction", [
      { from: stranger, to: prepared.hotWallet, value: toHex(parseEther("1")) },
    ]);
    const strayReceipt = await client.waitForTransactionReceipt({
      hash: stray,
      pollingInterval: 100,
    });
    const broken = Number(strayReceipt.blockNumber);
    await finalIndexed(broken);
    const dirty = await reconciler.run({ chain, block: broken });
    expect(dirty.alerting).toBeGreaterThan(0);
    const refused = await attestor.tick(chain, schedule);
    expect(refused).toMatchObject({
      attested: [],
      skipped: "open_breaks",
      runId: dirty.runId,
      block: broken,
    });
    const count = await pool.query<{ n: string; requests: string }>(
      `SELECT (SELECT count(*) FROM attest.attestations)::text AS n,
              (SELECT count(*) FROM custody.tx_requests WHERE kind = 'attestation')::text AS requests`,
    );
    expect(count.rows[0]).toEqual({ n: "1", requests: "1" });
  }, 240_000);
});
