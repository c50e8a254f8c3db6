/**
 * A confirmed withdrawal reorged into another block while one endpoint is stuck on the losing fork
 * (its consensus client gone: its head stopped, it keeps answering the orphaned blocks and our
 * receipt in one of them) and the first node at the head does not give receipts yet (its
 * transaction index lagging: missing data). The withdrawal mined again, the same bytes one block
 * later. The receipt search asks every endpoint: the node at the head sends the receipt in the
 * canonical block, the stuck one (answering last) the receipt in its orphaned block. Merged by
 * hash, the last answer won: the orphaned receipt, which the canonical check then dropped, and the
 * paid withdrawal went to `receipt_unknown` ("no receipt for the tx that used the nonce"), later
 * `needs_review` NONCE_CONSUMED_NO_KNOWN_ATTEMPT: an operator failing it releases the hold of a
 * payment that left. Now every endpoint's receipt is kept and the one in the canonical block is
 * taken: the withdrawal is mined and confirmed in the chain's block.
 * Real anvil behind lying proxies (the stuck node's answers rewritten, the other's receipts
 * withheld), Postgres, KMS emulator.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/index.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";
import { confirmedWithdrawal, reincludedOneBlockLater, stuckOnFork } from "./testing/staleFork.js";

let t: LyingSignerTest;
let noReceipts: LyingProxy;
let slow: Server;
const DEST = "0x000000000000000000000000000000000000d1e6" as Hex;

/** An HTTP forwarder to `target` answering receipt reads `ms` late (a slow, far-away node). */
async function slowReceipts(target: string, ms: number): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString();
      if (body.includes("eth_getTransactionReceipt")) await new Promise((r) => setTimeout(r, ms));
      try {
        const up = await fetch(target, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        res.writeHead(up.status, { "content-type": "application/json" });
        res.end(await up.text());
      } catch {
        res.writeHead(502);
        res.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

beforeAll(async () => {
  t = await startLyingSignerTest(2, { chain: { reorgWindow: 50 } });
  noReceipts = await startLyingProxy(t.ctx.config.chains[0]!.rpcUrls[0]!);
  slow = await slowReceipts(t.proxy!.url, 400);
});

afterAll(async () => {
  await t?.stop();
  await noReceipts?.close();
  await new Promise((r) => slow?.close(r));
});

describe("a withdrawal reorged into another block while an endpoint is stuck on the losing fork", () => {
  it("is mined in the canonical block, never receipt_unknown, whichever receipt answers last", async () => {
    const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
    const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    // The first node at the head withholds receipts later; the stuck node is asked last.
    t.chain = { ...t.chain, rpcUrls: [noReceipts.url, anvilUrl, slowUrl] };
    await t.rpc("anvil_mine", ["0x4"]);
    const first = await confirmedWithdrawal(t, "stale-receipt", { to: DEST, value: 1_000n });
    await t.signer!.stop();

    // The stuck node's view: its head, its blocks from the withdrawal's up, its receipt there.
    const stuckHead = await stuckOnFork(t, first, { nonceCount: true });
    noReceipts.setNullReceipts(true);

    // The chain reorgs: the same signed bytes mine one block later, and it moves on.
    const again = await reincludedOneBlockLater(t, "stale-receipt", first, stuckHead);
    t.signer = t.run();

    const back = await waitFor(
      "the withdrawal recorded in the canonical block",
      async () => {
        const o = await t.outcome("stale-receipt");
        if (o.status === "receipt_unknown" || o.status === "needs_review")
          throw new Error(`the paid withdrawal went to ${o.status}`);
        if (o.blockHash === again.blockHash && o.status === "confirmed") return o;
        await t.rpc("evm_mine");
        return undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(back.txHash).toBe(first.txHash);
    expect(back.reorgs).toBe(1);
    const events = await t.ctx.db.pool.query<{ to_status: string }>(
      "SELECT to_status FROM custody.tx_request_events WHERE request_id = 'stale-receipt' ORDER BY id",
    );
    expect(events.rows.map((r) => r.to_status)).not.toContain("receipt_unknown");
  });
});
