/**
 * A stored deploy followed through an endpoint of another network with our chain id (a
 * misconfigured URL). Its nonce reads as used there (the wallet's count on that network) and its
 * contract is not there: before, the deploy was marked dropped on that network's "final" height
 * and a new one signed at that network's next nonce (a nonce our chain had not reached: a gap).
 * Now the count and code are read at our final block's hash (the indexer's published one), which
 * that network has not: no answer, "unknown", and nothing is dropped or signed.
 * Two real anvils with the same chain id and different genesis blocks, Postgres, the KMS emulator.
 */
import { createPublicClient, type Hex, http, type PublicClient, toHex } from "viem";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/rpc.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import type { Lease } from "./lease.js";
import { storedDeploySender } from "./storedDeploy.js";
import { readStoredDeploy, storeKilledDeploy, TINY_CONTRACT } from "./testing/killedDeploy.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest;
let other: Anvil;

beforeAll(async () => {
  t = await startSignerTest();
  other = await startAnvil({ chainId: TEST_CHAIN_ID, args: ["--timestamp", "1000000"] });
});

afterAll(async () => {
  await other?.stop();
  await t?.stop();
});

describe("a stored deploy followed through a node of another network with our chain id", () => {
  it("is not dropped on that network's count, and no new deploy is signed", async () => {
    const account = await t.wallet();
    const chain = t.ctx.config.chains[0]!;
    const ours = createPublicClient({ chain: foundry, transport: http(chain.rpcUrls[0]!) });
    // Our chain: the deploy's bytes stored at the wallet's next nonce, never sent.
    const { nonce } = await storeKilledDeploy(
      { ctx: t.ctx, chain, client: ours as PublicClient },
      account,
      "OtherNetwork",
    );
    // The indexer's published final block: ours, a few blocks on.
    await t.rpc("anvil_mine", [toHex(5)]);
    const final = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", [
      "latest",
      false,
    ]);
    await t.ctx.db.pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
       VALUES ($1, $2, $3, $2, $3)`,
      [TEST_CHAIN_ID, BigInt(final.number).toString(), final.hash.toLowerCase()],
    );
    // The other network: the wallet has sent 50 transactions there, deep below its head.
    await fetch(other.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "anvil_setNonce",
        params: [account.address, toHex(nonce + 50n)],
      }),
    });
    const wrong = createPublicClient({ chain: foundry, transport: http(other.rpcUrl) });
    await wrong.request({ method: "anvil_mine" as never, params: [toHex(100)] as never });

    const leases: Lease[] = [];
    const send = storedDeploySender({
      common: t.ctx.common,
      databaseUrl: t.ctx.db.url,
      chain: { ...chain, rpcUrls: [other.rpcUrl] },
      client: wrong as PublicClient,
      rpc: createRpcClient({ chainId: TEST_CHAIN_ID, urls: [other.rpcUrl] }),
      account,
      sendRawTransaction: (raw) => wrong.sendRawTransaction({ serializedTransaction: raw }),
      getFinalizedBlock: async () => null,
      onLease: (l) => leases.push(l),
      // A new deploy stored: what must not happen (stopped there, before it is sent).
      crash: (p) => {
        if (p === "deploy_after_commit") throw new Error("a new deploy was signed");
      },
      pollMs: 50,
    });
    const error = await send({ name: "OtherNetwork", data: TINY_CONTRACT.init }).catch(
      (e: unknown) => e as Error,
    );
    for (const l of leases) await l.release();
    expect(String(error)).toContain("its nonce is used but not yet at a final block");
    expect(await readStoredDeploy(t.ctx.db.pool, account.address, "OtherNetwork")).toMatchObject({
      nonce,
      status: "signed",
    });
  });
});
