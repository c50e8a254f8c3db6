/**
 * A payment confirmed and finalized whose block an accepted deep reorg undid (`chains resume
 * --accept-reorg`, recorded in chain.reorg_log), its transaction not on the new branch: its caller
 * booked it paid, the chain holds no payment, and its nonce is unused, so every later nonce of the
 * hot wallet waits behind it. The signer follows it again from the reorg (undone.ts): back to
 * `broadcast`, its stored bytes sent again (the same hash: never re-signed, so it cannot pay
 * twice), event `final_block_undone`, alert `confirmed_tx_reorged_out`, and followed to final;
 * the later withdrawal goes out behind it.
 */
import { type Hex, keccak256 } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TxOutcome } from "./outcomes.js";
import { deepReorg } from "./testing/deepReorg.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
const PAID = "0x000000000000000000000000000000000000fa21" as Hex;
const LATER = "0x000000000000000000000000000000000000fa22" as Hex;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 } },
    signer: {},
  });
});

afterAll(async () => {
  await t?.stop();
});

async function finalized(id: string, what: string): Promise<TxOutcome> {
  return waitFor(what, async () => {
    const o = await t.outcome(id);
    if (o.status !== "finalized") await t.rpc("evm_mine");
    return o.status === "finalized" ? o : undefined;
  });
}

describe("a finalized payment whose final block an accepted deep reorg undid", () => {
  it("is followed again: its stored bytes sent again and followed to final", async () => {
    await t.withdraw("final-undone", { to: PAID, value: 777n });
    const first = await finalized("final-undone", "finalized");
    const { rows } = await t.ctx.db.pool.query<{ raw_tx: Hex }>(
      "SELECT raw_tx FROM custody.tx_attempts WHERE request_id = 'final-undone' AND status = 'mined'",
    );
    const raw = rows[0]!.raw_tx;
    await t.rpc("anvil_mine", ["0x2"]);
    // The new branch holds no payment: the bytes are not on it, nor in the node's pool.
    await deepReorg(t, first.blockNumber!, []);
    expect(await t.client.getBalance({ address: PAID })).toBe(0n);
    await t.withdraw("after-undone", { to: LATER, value: 5n });

    // old code: timed out waiting for the payment followed to final again (the request stayed
    // finalized in the orphaned block; every later nonce waited: nonce_gap for a person).
    const again = await waitFor("the payment followed to final again", async () => {
      const o = await t.outcome("final-undone");
      await t.rpc("evm_mine");
      return o.status === "finalized" && o.blockHash !== first.blockHash ? o : undefined;
    });
    expect(again.txHash).toBe(keccak256(raw));
    expect(again.txHash).toBe(first.txHash);
    expect(again.nonce).toBe(first.nonce);
    expect(again.reorgs).toBe(1);
    const { rows: events } = await t.ctx.db.pool.query<{ event: string; to_status: string }>(
      "SELECT event, to_status FROM custody.tx_request_events WHERE request_id = 'final-undone' ORDER BY id",
    );
    expect(events).toContainEqual({ event: "final_block_undone", to_status: "broadcast" });
    expect(await t.alertCount("confirmed_tx_reorged_out", t.account.address)).toBe(1);

    // The wallet is not wedged: the later withdrawal goes out behind it.
    const later = await finalized("after-undone", "the later withdrawal finalized");
    expect(later.nonce).toBe(first.nonce! + 1n);
    // Paid once.
    expect(await t.client.getBalance({ address: PAID })).toBe(777n);
    expect(await t.client.getBalance({ address: LATER })).toBe(5n);
  });
});
