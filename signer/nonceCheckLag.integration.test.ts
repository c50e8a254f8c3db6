/**
 * nonces.ts and a lagging node (DESIGN: missing data is never evidence). Every attempt of a
 * withdrawal was refused for good by our node, so its nonce is a cancel job while the chain has
 * not used it; then its payment bytes mine anyway (another node's pool had them). While the only
 * endpoint lags behind that block, its mined count says the nonce is still unused: a cancel signed
 * then is signed for a used nonce (and, past the cancel budget, ends the request in needs_review
 * with a cancel_unsendable alert). Nothing may be decided from that count: no cancel is signed
 * until a node at the best head seen says the nonce is unused, and the payment is recorded.
 * The stall and bump stages read the same count: while it lags, a payment that mined reads as
 * unmined, and no replacement is signed for its used nonce (nor a fee-cap alert raised for it).
 * Real anvil behind the lying proxy, Postgres and the KMS emulator.
 */

import { Registry } from "prom-client";
import { type Hex, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/rpc.js";
import { startLyingProxy } from "../chains/testing/lyingChain/index.js";
import { createChainView } from "./broadcaster/chainView.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;

beforeAll(async () => {
  t = await startLyingSignerTest(1);
});

afterAll(async () => {
  await t?.stop();
});

/** Sends `raw` straight to anvil and waits for its block: anvil's automine mines after the answer. */
async function minedNow(raw: Hex): Promise<void> {
  const hash = await t.rpc<Hex>("eth_sendRawTransaction", [raw]);
  await t.client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
}

async function sends(id: string): Promise<number> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'send'",
    [id],
  );
  return rows[0].n;
}

async function cancels(id: string): Promise<number> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel'",
    [id],
  );
  return rows[0].n;
}

describe("a nonce without a live attempt while the node lags behind the block that used it", () => {
  it("gets no cancel signed on the lagging count; the payment is recorded once the node is back", async () => {
    const dest = "0x000000000000000000000000000000000000c0c0" as Hex;
    const account = await t.wallet();
    const from = account.address.toLowerCase();
    const kept: Hex[] = [];
    // Our node refuses the payment and every cancel for good (the payment's bytes are kept, as a
    // node that refused them may have passed them on).
    t.proxy!.setSendIntercept((raw) => {
      const tx = parseTransaction(raw as Hex);
      if (tx.to?.toLowerCase() === dest) {
        kept.push(raw as Hex);
        return "intrinsic gas too low";
      }
      return tx.to?.toLowerCase() === from ? "intrinsic gas too low" : undefined;
    });
    const signer = t.run(account, {
      settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 400, maxCancelAttempts: 1_000 },
    });
    try {
      await t.withdraw("lag-cancel", { from: account.address, to: dest, value: 3n });
      await waitFor("a cancel refused", async () => (await cancels("lag-cancel")) > 0);
      // The node falls 3 blocks behind (a head it had shown); the payment's bytes mine one block later.
      await t.rpc("anvil_mine", ["0x5"]);
      const seen = t.proxy!.requests();
      await waitFor("the signer's next passes", async () => t.proxy!.requests() > seen + 5);
      t.proxy!.setLag(3);
      await minedNow(kept[0]!);
      expect(await t.client.getBalance({ address: dest })).toBe(3n);
      // A pass that read the count before the payment mined may still place its cancel.
      await new Promise((r) => setTimeout(r, 1_000));
      const before = await cancels("lag-cancel");
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await cancels("lag-cancel")).toBe(before);
      // Not given up as unsendable either (no needs_review, no cancel_unsendable alert).
      expect(["signed", "broadcast"]).toContain(
        (await getTxRequest(t.ctx.db.pool, "lag-cancel"))!.status,
      );
      t.proxy!.setLag(null);
      await waitFor("the payment recorded and confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "lag-cancel");
        if (r?.status !== "confirmed") await t.rpc("evm_mine");
        return r?.status === "confirmed";
      });
      expect(await t.client.getBalance({ address: dest })).toBe(3n);
    } finally {
      t.proxy!.setSendIntercept(null);
      t.proxy!.setLag(null);
      await signer.stop();
    }
  });
});

describe("a payment bumped while the node lags behind the block that mined it", () => {
  it("gets no replacement signed on the lagging count; the payment is recorded once the node is back", async () => {
    const dest = "0x000000000000000000000000000000000000c1c1" as Hex;
    const account = await t.wallet();
    const kept: Hex[] = [];
    // Our node loses every payment it acknowledges (the stall stage resends, then bumps early; the
    // bump interval replaces it every 300 ms): another node's pool has the first bytes.
    t.proxy!.setSendDrop((raw) => {
      if (parseTransaction(raw as Hex).to?.toLowerCase() !== dest) return false;
      kept.push(raw as Hex);
      return true;
    });
    const signer = t.run(account, {
      chain: { ...t.chain, bumpIntervalMs: 300 },
      settings: { stallResendMs: 100 },
    });
    try {
      await t.withdraw("lag-bump", { from: account.address, to: dest, value: 4n });
      await waitFor("a payment replaced", async () => (await sends("lag-bump")) > 1);
      // The node falls 3 blocks behind (a head it had shown); the first bytes mine one block later.
      await t.rpc("anvil_mine", ["0x5"]);
      const seen = t.proxy!.requests();
      await waitFor("the signer's next passes", async () => t.proxy!.requests() > seen + 5);
      t.proxy!.setLag(3);
      await minedNow(kept[0]!);
      expect(await t.client.getBalance({ address: dest })).toBe(4n);
      // A pass that read the count before the payment mined may still sign its replacement.
      await new Promise((r) => setTimeout(r, 1_000));
      const before = await sends("lag-bump");
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await sends("lag-bump")).toBe(before);
      t.proxy!.setLag(null);
      await waitFor("the payment recorded and confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "lag-bump");
        if (r?.status !== "confirmed") await t.rpc("evm_mine");
        return r?.status === "confirmed";
      });
      expect(await t.client.getBalance({ address: dest })).toBe(4n);
    } finally {
      t.proxy!.setSendDrop(null);
      t.proxy!.setLag(null);
      await signer.stop();
    }
  });
});

describe("a first endpoint that trails another", () => {
  it("has the snapshot read from a node at the best head seen, so the stages acting on its count are not held", async () => {
    const account = await t.wallet();
    const second = await startLyingProxy(t.ctx.config.chains[0]!.rpcUrls[0]!);
    const urls = [t.proxy!.url, second.url];
    const rpc = createRpcClient({ chainId: t.chain.chainId, urls });
    const view = createChainView({
      chain: { ...t.chain, rpcUrls: urls },
      from: account.address,
      rpc,
      getFinalizedBlock: async () => null,
      logger: t.ctx.common.logger,
      registry: new Registry(),
    });
    try {
      await t.rpc("anvil_mine", ["0x5"]);
      t.proxy!.setLag(3);
      const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
      // A read of the head block through the shared client (as the tracker's receipts and the
      // fee reads go): the first endpoint lacks it, the second answers; the best head seen is the head.
      await rpc.request("eth_getBlockByNumber", [`0x${head.toString(16)}`, false], {
        atLeast: head,
      });
      expect(rpc.bestHead()).toBe(head);
      // Read from the first endpoint, the count would be as of 3 blocks back (atBestHead false:
      // no nonce, stall or bump stage, for as long as it trails).
      expect(await view.snapshot()).toMatchObject({ head, atBestHead: true });
    } finally {
      t.proxy!.setLag(null);
      await second.close();
    }
  });
});
