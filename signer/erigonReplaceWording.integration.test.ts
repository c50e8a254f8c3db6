/**
 * Erigon's txpool words for two everyday answers, behind its ImportResult name (as with its gas
 * limit refusal, nodeErrorWording.integration.test.ts): DiscardReason DuplicateHash, "existing
 * txn with same hash" (it holds these exact bytes: already known), and NotReplaced, "could not
 * replace existing tx" (a replacement below its price bump: replacement underpriced). Read as
 * unknown errors, the attempt stayed `signed`, resent and refused every tick, and was never due
 * for a bump (only `broadcast` attempts age into one): the nonce kept the fees it had when the
 * wallet's session restarted (or its last accepted bump), so a rising base fee froze the wallet.
 * On anvil with automine off, through a proxy that answers those sends as Erigon does.
 */
import { type Hex, keccak256, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { bumpIntervalMs: 500, confirmations: { kind: "blocks", blocks: 1 } } },
    proxy: startRpcProxy,
  });
  await t.rpc("evm_setAutomine", [false]);
});

afterAll(async () => {
  await t?.stop();
});

async function attempts(requestId: string): Promise<{ tx_hash: string; status: string }[]> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT tx_hash, status FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
    [requestId],
  );
  return rows;
}

async function minedAndConfirmed(id: string): Promise<void> {
  await waitFor(
    `${id} confirmed`,
    async () => {
      await t.rpc("evm_mine");
      return (await getTxRequest(t.ctx.db.pool, id))?.status === "confirmed";
    },
    { timeoutMs: 10_000 },
  );
}

describe("Erigon's replacement and duplicate wording", () => {
  it("existing txn with same hash: counted as sent, so it is still bumped", async () => {
    const seen = new Set<Hex>();
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const hash = keccak256((call.params as Hex[])[0]!);
      if (!seen.has(hash)) {
        seen.add(hash);
        return undefined;
      }
      return { error: { code: -32000, message: "INVALID: existing txn with same hash" } };
    });
    const account = await t.wallet(parseEther("10"));
    const id = "erigon-duplicate";
    let signer = t.run(account, { chain: { ...t.chain, bumpIntervalMs: 60_000 } });
    try {
      await t.withdraw([id], { from: account.address });
      await waitFor(
        "first attempt pooled",
        async () => (await attempts(id))[0]?.status === "broadcast",
        { timeoutMs: 10_000 },
      );
      await signer.stop();
      // A new session (deploy, lease moved) resends every live attempt: Erigon holds it.
      signer = t.run(account);
      await waitFor(
        "a bump after the bump interval",
        async () => (await attempts(id)).length >= 2,
        {
          timeoutMs: 8_000,
        },
      );
      await minedAndConfirmed(id);
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });

  it("could not replace existing tx: the next bump pays more and replaces it", async () => {
    const refused = new Set<Hex>();
    let sends = 0;
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const hash = keccak256((call.params as Hex[])[0]!);
      // The first replacement is refused (another node's pool held a dearer one, say).
      if (refused.has(hash) || (++sends === 2 && refused.add(hash)))
        return { error: { code: -32000, message: "INVALID: could not replace existing tx" } };
      return undefined;
    });
    const account = await t.wallet(parseEther("10"));
    const id = "erigon-not-replaced";
    const signer = t.run(account);
    try {
      await t.withdraw([id], { from: account.address });
      await waitFor(
        "a replacement after the refused one",
        async () => (await attempts(id)).length >= 3,
        { timeoutMs: 8_000 },
      );
      expect(refused.size).toBe(1);
      await minedAndConfirmed(id);
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });
});
