/**
 * End to end on anvil: the whole service (every role, started as in production) with the KMS
 * emulator; deposits credited, a withdrawal under the threshold, one with two approvals (both
 * signed by KMS, sent and confirmed), one rejected with its hold voided; then the ledger and the
 * chain agree.
 */
import { formatEther, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
// ops/modules.ts does not list the signer role yet; importing it registers it (once) here.
import "../../signer/role.js";
import { policiesSchema } from "../config.js";
import { ROLE_NAMES } from "../roles.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { DEMO_POLICY, EXTERNAL, runScenario } from "./scenario.js";
import { prepareCustody } from "./setup.js";

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      { chainId: 31337, key: "local-a", config: { confirmations: { kind: "blocks", blocks: 2 } } },
    ],
  });
  kms = await startKmsEmulator();
});
afterAll(async () => {
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
});

describe("withdrawals end to end", () => {
  it("credits deposits, signs and confirms approved withdrawals, voids a rejected one", async () => {
    const chain = ctx.config.chains[0]!;
    const prepared = await prepareCustody({
      common: ctx.common,
      pool: ctx.db.pool,
      chain,
      kmsEndpoint: kms.url,
      policies: policiesSchema.parse(
        JSON.parse(
          JSON.stringify(DEMO_POLICY(chain.chainId), (_k, v) =>
            typeof v === "bigint" ? v.toString() : v,
          ),
        ),
      ),
    });
    service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
    const rpc = async (method: string, params: unknown[] = []) =>
      fetch(chain.rpcUrls[0]!, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
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

    expect(result.withdrawals.small).toMatchObject({ status: "confirmed", requiredApprovals: 0 });
    expect(result.withdrawals.approved).toMatchObject({
      status: "confirmed",
      requiredApprovals: 2,
    });
    expect((result.withdrawals.approved.approvals as unknown[]).length).toBe(2);
    expect(result.withdrawals.rejected).toMatchObject({ status: "rejected" });
    // the chain: exactly the two confirmed withdrawals left the custody
    expect(formatEther(result.external.after - result.external.before)).toBe("2.5");
    // the ledger: alice 5 - 0.5 - 2, nothing held; bob untouched by the rejected 1.5
    expect(result.balances.alice).toMatchObject({
      posted: parseEther("2.5").toString(),
      pending: "0",
      available: parseEther("2.5").toString(),
    });
    expect(result.balances.bob).toMatchObject({
      posted: parseEther("3").toString(),
      pending: "0",
    });
    // gas was booked against the hot wallet for each confirmed withdrawal
    const { rows } = await ctx.db.pool.query(
      `SELECT count(*)::int AS n, sum(amount)::text AS total FROM ledger.transfers
        WHERE kind = 'fee' AND debit_account_id = (SELECT id FROM ledger.accounts WHERE name = 'fees:gas' AND asset_id = $1)`,
      [`${chain.chainId}:0x0000000000000000000000000000000000000000`],
    );
    expect(rows[0].n).toBeGreaterThanOrEqual(2);
    // every state change of the approved withdrawal is in the audit log, in order
    const audit = await ctx.db.pool.query(
      "SELECT action, actor FROM api.audit_log WHERE entity_id = $1 ORDER BY id",
      [result.withdrawals.approved.id],
    );
    expect(audit.rows.map((r) => r.action)).toEqual([
      "withdrawal.requested",
      "withdrawal.pending_approval",
      "withdrawal.approved_by",
      "withdrawal.approved_by",
      "withdrawal.approved",
      "withdrawal.signing",
      "withdrawal.broadcast",
      "withdrawal.confirmed",
    ]);
    expect(EXTERNAL).toMatch(/^0x/);
  });
});
