/**
 * A stored CLI deploy that reverted at a final block (row `reverted`, its nonce used) whose block a
 * deep reorg accepted at the chain's resume took away: the deploy's nonce is unused again, and the
 * wallet's later nonces (a withdrawal signed above it) wait behind it. Nothing of custody's fills
 * it (the deploy ended; the signer never re-signs it), so a person must be told: the gap stage
 * raises `nonce_gap` naming the deploy, where it had taken every node counting that nonce unused
 * as behind the deploy's block and waited in silence; and the deploy command says so (it had told
 * the operator to run the signer until its withdrawal mined, or that the node was behind). A node
 * below that block is still only behind (revertedDeployNodeNonce.integration.test.ts).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "./lease.js";
import {
  cliDeploySender,
  minedStatus,
  signedNonce,
  startFactoryDeployedSignerTest,
  startSignerAndWithdraw,
  storedDeployRevertedToFinal,
} from "./testing/factoryDeployed.js";
import { waitFor } from "./testing/harness.js";
import type { SignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let anvilUrl: string;
let deployNonce: number;
let deployBlock: bigint;
const DEST = "0x000000000000000000000000000000000000d1d4" as Hex;

beforeAll(async () => {
  const set = await startFactoryDeployedSignerTest();
  ({ t, anvilUrl } = set);
  ({ nonce: deployNonce, block: deployBlock } = await storedDeployRevertedToFinal(t, set.anvilUrl));
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

  it("the deploy command says the deploy's block was undone and what to do, signing nothing", async () => {
    // The deploy command runs with the signer stopped (it takes the wallet's lease).
    await t.signer?.stop();
    let lease: Lease | undefined;
    const send = cliDeploySender(t, anvilUrl, (l) => {
      lease = l;
    });
    try {
      const refused = await send({ name: "Another", data: "0x00" }).catch((e: Error) => e);
      // before the fix: "... has signer transactions not mined yet (nonces 1 to 2): run the signer
      // until they are mined, stop it, then deploy" (they wait behind the undone deploy's nonce:
      // never), and without them "... the node is behind; deploy once it has caught up" (it is not)
      expect(String(refused)).toMatch(
        new RegExp(
          `stored Reverting deploy at nonce ${deployNonce} .*ended reverted at final block ${deployBlock}.*a deep reorg .*undid that block.*raw_tx`,
        ),
      );
      const { rows } = await t.ctx.db.pool.query(
        "SELECT name FROM custody.hot_wallet_deploys ORDER BY id",
      );
      expect(rows).toEqual([{ name: "Reverting" }]);
    } finally {
      await lease?.release();
    }
  });
});
