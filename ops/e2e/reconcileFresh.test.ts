/**
 * Acceptance (issue 14): a fresh stack — hot wallet funded by a transaction and booked with
 * `custody-node treasury fund`, the factory deployed from it (its gas booked by the deploy), the
 * whole service running deposits and withdrawals through the API — reconciles with 0 breaks:
 * `custody-node reconcile` exits 0, and `custody-node audit verify` finds the audit chain intact.
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { waitFinalInIndex } from "../../ledger/recon/testing/attestedCustody.js";
import { treasuryTransferId } from "../../ledger/treasury.js";
import { runScenario } from "../devstack/scenario.js";
import { type Service, startService } from "../start.js";
import { type ChainCli, chainCli } from "../testing/process.js";
import { type CustodyTest, prepareTestCustody, startCustodyTest } from "./setup.js";

let t: CustodyTest;
let service: Service | undefined;
let operatorCli: ChainCli | undefined;

beforeAll(async () => {
  t = await startCustodyTest();
});
afterAll(async () => {
  await service?.stop();
  await t?.cleanup();
  operatorCli?.remove();
});

describe("a fresh deployment reconciles with 0 breaks", () => {
  it("fund (booked), deploy (gas booked), deposits and withdrawals, reconcile exits 0", async () => {
    const { ctx, kms, chain, rpc, mine } = t;
    const prepared = await prepareTestCustody(ctx, kms);
    operatorCli = chainCli({ databaseUrl: ctx.db.url, chain, entry: { traces: true } });
    const cli = operatorCli.run;

    // The indexer has not run yet: the amount is given, and reconciliation checks it later.
    const fund = await cli([
      "treasury",
      "fund",
      "--chain",
      "local-a",
      "--tx",
      prepared.fundTxHash,
      "--wallet",
      prepared.hotWallet,
      "--amount",
      parseEther("100").toString(),
      "--by",
      "ops-anna",
      "--reason",
      "hot wallet float",
    ]);
    expect([fund.code, fund.out]).toEqual([0, expect.stringContaining("booked treasury")]);
    const deployTx = await ctx.db.pool.query<{ deploy_tx_hash: string }>(
      "SELECT deploy_tx_hash FROM chain.contracts WHERE chain_id = $1",
      [chain.chainId],
    );
    const gasId = treasuryTransferId("gas", chain.chainId, deployTx.rows[0]!.deploy_tx_hash, "fee");
    const gas = await ctx.db.pool.query("SELECT kind FROM ledger.transfers WHERE id = $1", [gasId]);
    expect(gas.rows).toEqual([{ kind: "fee" }]);

    service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
    const result = await runScenario({
      url: service.url,
      pool: ctx.db.pool,
      chain,
      hotWallet: prepared.hotWallet,
      tick: async () => {
        await mine();
      },
      timeoutMs: 90_000,
    });
    expect(["confirmed", "finalized"]).toContain(result.withdrawals.approved.status);

    // Everything the scenario did is at or below `head`; mine until the indexer has made it final.
    const head = Number.parseInt(await rpc<string>("eth_blockNumber"), 16);
    await waitFinalInIndex({
      pool: ctx.db.pool,
      chain,
      block: head,
      mine,
      rule: "confirmed",
    });
    const run = await cli(["reconcile", "--chain", "local-a", "--block", String(head), "--full"]);
    expect(run.out).toMatch(/^No breaks/);
    expect(run.code).toBe(0);
    const verify = await cli(["audit", "verify"]);
    expect([verify.code, verify.out]).toEqual([0, expect.stringContaining("audit log intact")]);
  });
});
