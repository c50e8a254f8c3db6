/**
 * A request that failed at a final block (its payment refused for good, its nonce used by a
 * cancel, CANCELLED once final) whose block an accepted deep reorg undid (`chains resume
 * --accept-reorg`, recorded in chain.reorg_log): the new branch may hold its payment bytes at that
 * nonce instead of the cancel (a node had passed them on). The customer was paid while the request
 * said `failed` (its caller released the hold; a retry would pay again): the signer follows the
 * request again from the reorg, finds its payment mined, records it (`failed_request_paid`, alert)
 * and follows it to final like any payment. With the cancel's nonce free instead, only cancels use
 * it: the payment is never sent again, and the request fails once more at the cancel's final block.
 */
import { type Hex, keccak256, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TxOutcome } from "./outcomes.js";
import { deepReorg } from "./testing/deepReorg.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
const PAID = "0x000000000000000000000000000000000000fa11" as Hex;
const CANCELLED = "0x000000000000000000000000000000000000fa12" as Hex;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 } },
    proxy: startRpcProxy,
    signer: { settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 1_000 } },
  });
});

afterAll(async () => {
  await t?.stop();
});

async function events(id: string) {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT from_status, to_status, event FROM custody.tx_request_events WHERE request_id = $1 ORDER BY id",
    [id],
  );
  return rows as { from_status: string; to_status: string; event: string }[];
}

/**
 * Every node refuses sends to `to` for good (the bytes some other node passed on); the refused
 * bytes are kept. The request fails CANCELLED at its cancel's final block.
 */
async function failedByCancel(id: string, to: Hex): Promise<{ failed: TxOutcome; raw: Hex[] }> {
  const raw: Hex[] = [];
  t.proxy!.setIntercept((call) => {
    if (call.method !== "eth_sendRawTransaction") return undefined;
    const bytes = (call.params as Hex[])[0]!;
    if (parseTransaction(bytes).to?.toLowerCase() !== to) return undefined;
    raw.push(bytes);
    return { error: { code: -32000, message: "intrinsic gas too low" } };
  });
  await t.withdraw(id, { to, value: 777n });
  const failed = await waitFor("failed by its cancel at a final block", async () => {
    const o = await t.outcome(id);
    if (o.status === "broadcast") await t.rpc("evm_mine");
    return o.status === "failed" ? o : undefined;
  });
  t.proxy!.setIntercept(undefined);
  expect(failed).toMatchObject({ errorCode: "CANCELLED", cancelled: true });
  expect(failed.finalizedAt).toBeInstanceOf(Date);
  return { failed, raw };
}

describe("a failed request whose final block an accepted deep reorg undid", () => {
  it("is found paid when its payment bytes mined instead of the cancel", async () => {
    const { failed, raw } = await failedByCancel("undone-paid", PAID);
    await t.rpc("anvil_mine", ["0x2"]);
    const payment = raw[0]!;
    // The new branch holds the payment at the cancel's nonce (a node had passed its bytes on).
    await deepReorg(t, failed.blockNumber!, [payment]);
    expect(await t.client.getBalance({ address: PAID })).toBe(777n);

    // old code: timed out waiting for the payment followed (the request stayed `failed`).
    const paid = await waitFor("the payment followed to final", async () => {
      const o = await t.outcome("undone-paid");
      if (o.status !== "failed" && o.status !== "finalized") await t.rpc("evm_mine");
      return o.status === "finalized" ? o : undefined;
    });
    expect(paid.txHash).toBe(keccak256(payment));
    expect(paid.nonce).toBe(failed.nonce);
    expect(paid.errorCode).toBeNull();
    expect((await events("undone-paid")).map((e) => e.event)).toEqual([
      "cancel_signed",
      "final_block_undone",
      "failed_request_paid",
    ]);
    expect(await t.alertCount("failed_request_paid", t.account.address)).toBe(1);
    // Only the payment: the cancel of that nonce never mined on the new branch.
    expect(await t.client.getBalance({ address: PAID })).toBe(777n);
  });

  it("with its nonce free again: only cancels use it, and it fails again", async () => {
    const { failed } = await failedByCancel("undone-free", CANCELLED);
    await t.rpc("anvil_mine", ["0x2"]);
    await deepReorg(t, failed.blockNumber!, []);
    // old code: timed out waiting for failed again at a new cancel's final block (the request kept
    // the orphaned cancel's block as its record while the nonce got a cancel nobody followed).
    const again = await waitFor("failed again at a new cancel's final block", async () => {
      const o = await t.outcome("undone-free");
      if (o.status !== "failed" || o.blockHash === failed.blockHash) await t.rpc("evm_mine");
      return o.status === "failed" && o.blockHash !== failed.blockHash ? o : undefined;
    });
    expect(again).toMatchObject({ errorCode: "CANCELLED", nonce: failed.nonce });
    expect(again.finalizedAt).toBeInstanceOf(Date);
    expect((await events("undone-free")).map((e) => e.event)).toContain("final_block_undone");
    expect(await t.client.getBalance({ address: CANCELLED })).toBe(0n);
  });
});
