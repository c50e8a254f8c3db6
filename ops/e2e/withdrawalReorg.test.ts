/**
 * A confirmed withdrawal removed by a reorg, through the whole service (every role) and its API:
 * confirmed (3 confirmations) → a 5-block anvil_reorg takes it out → the API says `broadcast`
 * (audit `withdrawal.reorged`, a `withdrawal.reorged` event), the posting is reverted to a hold →
 * the signer's same bytes mine again → `confirmed` → `finalized`; the destination is paid once and
 * the ledger books the withdrawal once (plus its reversal pair).
 */

import { createPublicClient, getAddress, http, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../api/apiKeys.js";
import { adapterPerChain } from "../../chains/index.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { createLedger, transferId } from "../../ledger/index.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type Service, startService } from "../start.js";
import { createTestContext, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";
import { prepareTestCustody } from "./setup.js";

const DEST = getAddress("0x000000000000000000000000000000000000beef");

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        key: "local-a",
        config: { confirmations: { kind: "blocks", blocks: 3 }, reorgWindow: 8 },
      },
    ],
  });
  kms = await startKmsEmulator();
}, 120_000);
afterAll(async () => {
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
});

describe("withdrawal reorged out after confirmation", () => {
  it("goes back to broadcast with its posting held again, confirms again, finalizes, pays once", async () => {
    const chain = ctx.config.chains[0]!;
    const prepared = await prepareTestCustody(ctx, kms, { policies: "config" });
    const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
    await ledger.ensureAssetsFromConfig([chain]);
    const NATIVE = `${chain.chainId}:0x0000000000000000000000000000000000000000`;
    await ledger.transfer({
      id: transferId("reorg:fund:alice"),
      assetId: NATIVE,
      debit: "custody:deposits",
      credit: "user:alice",
      amount: parseEther("5"),
      kind: "manual",
    });
    service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
    const client = createPublicClient({ cacheTime: 0, transport: http(chain.rpcUrls[0]) });
    const rpc = (method: string, params: unknown[] = []) =>
      client.request({ method: method as never, params: params as never });
    const key = (
      await createApiKey(ctx.db.pool, {
        owner: "backend",
        scopes: ["withdrawals:write", "ledger:read"],
      })
    ).plaintext;
    const api = async (method: "GET" | "POST", path: string, body?: object) => {
      const res = await fetch(`${service!.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body ? { "content-type": "application/json", "idempotency-key": "reorg-1" } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return (await res.json()) as Record<string, unknown> & {
        status: string;
        history?: { action: string }[];
      };
    };
    await rpc("anvil_mine", ["0x6"]); // room below for a 5-block reorg
    const amount = parseEther("1");
    const w = await api("POST", "/v1/withdrawals", {
      customerId: "alice",
      chain: chain.key,
      asset: "native",
      to: DEST,
      amount: amount.toString(),
    });
    expect(w.status).toBe("signing");
    const id = String(w.id);
    const get = () => api("GET", `/v1/withdrawals/${id}`);
    /** The withdrawal once the API shows `status` (nothing mined while waiting). */
    const untilStatus = (what: string, status: string) =>
      waitFor(
        what,
        async () => {
          const got = await get();
          return got.status === status ? got : undefined;
        },
        { everyMs: 200 },
      );

    // Mine just enough for 3 confirmations, then let the API catch up without mining more.
    const sent = await waitFor(
      "sent",
      async () => {
        const got = await get();
        return got.txHash ? (got.txHash as `0x${string}`) : undefined;
      },
      { everyMs: 200 },
    );
    const tx = await waitFor(
      "mined",
      async () => {
        const r = await client.getTransactionReceipt({ hash: sent }).catch(() => undefined);
        if (!r) await rpc("evm_mine");
        return r;
      },
      { everyMs: 200 },
    );
    while ((await client.getBlockNumber()) - tx.blockNumber + 1n < 3n) await rpc("evm_mine");
    const confirmed = await untilStatus("confirmed", "confirmed");
    const alice = () => ledger.balance({ assetId: NATIVE, name: "user:alice" });
    expect((await alice()).debitsPending).toBe(0n);
    expect(await client.getBalance({ address: DEST })).toBe(amount);

    // Take the blocks from the tx's on out (5 deep); nothing mined until the API has seen it.
    const head = await client.getBlockNumber();
    expect(head - tx.blockNumber + 1n).toBe(3n);
    await rpc("anvil_reorg", [5, []]);
    const reorged = await untilStatus("back to broadcast", "broadcast");
    expect(reorged.history!.map((h) => h.action)).toContain("withdrawal.reorged");
    // The posting is reverted to a hold: alice's amount is held, not spent, not released.
    const held = await alice();
    expect(held.debitsPending).toBe(amount);
    expect(held.available).toBe(parseEther("5") - amount);

    // The same bytes mine again; confirmed again, then final.
    const again = await waitFor(
      "confirmed again",
      async () => {
        const got = await get();
        if (got.status === "confirmed" || got.status === "finalized") return got;
        await rpc("evm_mine");
        return undefined;
      },
      { everyMs: 200 },
    );
    expect(again.txHash).toBe(confirmed.txHash);
    await waitFor(
      "finalized",
      async () => {
        if ((await get()).status === "finalized") return true;
        await rpc("evm_mine");
        return undefined;
      },
      { everyMs: 200 },
    );

    expect(await client.getBalance({ address: DEST })).toBe(amount); // paid once
    const after = await alice();
    expect(after.debitsPending).toBe(0n);
    expect(after.available).toBe(parseEther("5") - amount);
    const { rows: events } = await ctx.db.pool.query<{ type: string }>(
      "SELECT type FROM api.webhook_events WHERE payload->>'withdrawal_id' = $1",
      [id],
    );
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        "withdrawal.reorged",
        "withdrawal.confirmed",
        "withdrawal.finalized",
      ]),
    );
    expect((await ledger.check()).ok).toBe(true);
    // Reconciliation pairs the tx and its gas with one standing booking each (the reverted
    // posting and its reversal pair up): no break on the withdrawal's facts.
    for (let i = 0; i < 4; i++) await rpc("evm_mine");
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common),
    }).run({
      chain,
      full: true,
    });
    expect(run.breaks.filter((b) => b.key.startsWith(String(confirmed.txHash)))).toEqual([]);
    await ledger.close();
  }, 240_000);
});
