/**
 * Acceptance (issue 14): a fresh stack — hot wallet funded by a transaction and booked with
 * `custody-node treasury fund`, the factory deployed from it (its gas booked by the deploy), the
 * whole service running deposits and withdrawals through the API — reconciles with 0 breaks:
 * `custody-node reconcile` exits 0, and `custody-node audit verify` finds the audit chain intact.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { treasuryTransferId } from "../../ledger/treasury.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { runScenario } from "../devstack/scenario.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { spawnCli } from "../testing/process.js";
import { waitFor } from "../testing/wait.js";
import { prepareTestCustody } from "./setup.js";

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;
let dir: string;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      { chainId: 31337, key: "local-a", config: { confirmations: { kind: "blocks", blocks: 2 } } },
    ],
  });
  kms = await startKmsEmulator();
  dir = mkdtempSync(path.join(tmpdir(), "e2e-recon-"));
});
afterAll(async () => {
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a fresh deployment reconciles with 0 breaks", () => {
  it("fund (booked), deploy (gas booked), deposits and withdrawals, reconcile exits 0", async () => {
    const chain = ctx.config.chains[0]!;
    const prepared = await prepareTestCustody(ctx, kms);
    const configPath = path.join(dir, "config.json");
    const { key, chainId, name, rpcUrls, confirmations, reorgWindow, blockTimeMs, feeModel } =
      chain;
    writeFileSync(
      configPath,
      JSON.stringify({
        chains: [
          {
            key,
            chainId,
            name,
            rpcUrls,
            confirmations,
            reorgWindow,
            blockTimeMs,
            feeModel,
            traces: true,
          },
        ],
      }),
    );
    const env = { DATABASE_URL: ctx.db.url, CUSTODY_CONFIG: configPath, LOG_LEVEL: "silent" };
    const cli = async (args: string[]) => {
      const p = spawnCli(args, env);
      const { code } = await p.exited;
      return { code, out: p.output() };
    };

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
    const rpc = async <T>(method: string, params: unknown[] = []): Promise<T> => {
      const r = await fetch(chain.rpcUrls[0]!, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
      return ((await r.json()) as { result: T }).result;
    };
    const result = await runScenario({
      url: service.url,
      pool: ctx.db.pool,
      chain,
      hotWallet: prepared.hotWallet,
      tick: async () => {
        await rpc("evm_mine");
      },
      timeoutMs: 90_000,
    });
    expect(["confirmed", "finalized"]).toContain(result.withdrawals.approved.status);

    // Everything the scenario did is at or below `head`; mine until the indexer has made it final.
    const head = Number.parseInt(await rpc<string>("eth_blockNumber"), 16);
    await waitFor(
      `block ${head} final in the index`,
      async () => {
        await rpc("evm_mine");
        const r = await ctx.db.pool.query<{ block_number: string }>(
          "SELECT block_number FROM chain.checkpoints WHERE chain_id = $1",
          [chain.chainId],
        );
        return Number(r.rows[0]?.block_number ?? -1) - 2 >= head;
      },
      { timeoutMs: 60_000, everyMs: 200 },
    );
    const run = await cli(["reconcile", "--chain", "local-a", "--block", String(head), "--full"]);
    expect(run.out).toMatch(/^No breaks/);
    expect(run.code).toBe(0);
    const verify = await cli(["audit", "verify"]);
    expect([verify.code, verify.out]).toEqual([0, expect.stringContaining("audit log intact")]);
  });
});
