/**
 * A stored CLI deploy that reverted at a final block (row `reverted`, its nonce used) whose block a
 * deep reorg accepted at the chain's resume took away: the deploy's nonce is unused again, and the
 * wallet's later nonces (a withdrawal signed above it) wait behind it. Nothing of custody's fills
 * it (the deploy ended; the signer never re-signs it), so a person must be told: the gap stage
 * raises `nonce_gap` naming the deploy, where it had taken every node counting that nonce unused
 * as behind the deploy's block and waited in silence. A node below that block is still only
 * behind (revertedDeployNodeNonce.integration.test.ts).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/index.js";
import type { Lease } from "./lease.js";
import { storedDeploySender } from "./storedDeploy.js";
import {
  minedStatus,
  signedNonce,
  startFactoryDeployedSignerTest,
  startSignerAndWithdraw,
} from "./testing/factoryDeployed.js";
import { waitFor } from "./testing/harness.js";
import { deployWillRevert } from "./testing/revertingDeploy.js";
import type { SignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let deployNonce: number;
let deployBlock: bigint;
const DEST = "0x000000000000000000000000000000000000d1d4" as Hex;

beforeAll(async () => {
  const set = await startFactoryDeployedSignerTest();
  t = set.t;
  let lease: Lease | undefined;
  const send = storedDeploySender({
    common: t.ctx.common,
    databaseUrl: t.ctx.db.url,
    chain: t.chain,
    client: t.client,
    rpc: createRpcClient({ chainId: t.chain.chainId, urls: [set.anvilUrl] }),
    account: t.account,
    sendRawTransaction: (raw) => t.client.sendRawTransaction({ serializedTransaction: raw }),
    getFinalizedBlock: async () => null,
    onLease: (l) => {
      lease = l;
    },
    pollMs: 50,
  });
  let ended = false;
  const reverting = await deployWillRevert(t.client, t.account.address, () =>
    send({ name: "Reverting", data: "0x00" }).finally(() => {
      ended = true;
    }),
  );
  deployNonce = reverting.nonce;
  await t.rpc("evm_setAutomine", [true]);
  await waitFor("the deploy followed to final", async () => {
    await t.rpc("evm_mine");
    return ended;
  });
  await lease?.release();
  expect(String(await reverting.outcome)).toContain("reverted");
  const { rows } = await t.ctx.db.pool.query<{ tx_hash: Hex; status: string }>(
    "SELECT tx_hash, status FROM custody.hot_wallet_deploys",
  );
  expect(rows).toMatchObject([{ status: "reverted" }]);
  deployBlock = (await t.client.getTransactionReceipt({ hash: rows[0]!.tx_hash })).blockNumber;
});

afterAll(async () => {
  await t?.stop();
});

describe("a stored deploy that reverted at a final block a deep reorg undid", () => {
  it("raises nonce_gap naming the deploy instead of waiting in silence", async () => {
    await startSignerAndWithdraw(t, "behind-undone-deploy", DEST);
    expect(await signedNonce(t, "behind-undone-deploy")).toBe(BigInt(deployNonce + 1));
    expect(await minedStatus(t, "behind-undone-deploy")).toBe("confirmed");
    const wallet = t.account.address;
    const before = await t.alertCount("nonce_gap", wallet);

    // The accepted deep reorg: the deploy's block and everything above it replaced by empty blocks.
    const head = await t.client.getBlockNumber();
    await t.rpc("anvil_reorg", [Number(head - deployBlock + 1n), []]);
    expect(await t.client.getTransactionCount({ address: wallet })).toBe(deployNonce);

    // old code: timed out waiting for nonce_gap on the undone deploy's nonce (the gap stage took
    // the node as behind the deploy's block, at or above it though it was).
    await waitFor("nonce_gap on the undone deploy's nonce", async () => {
      await t.rpc("evm_mine");
      return (await t.alertCount("nonce_gap", wallet)) > before;
    });
  });
});
