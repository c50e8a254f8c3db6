/**
 * A stored CLI deploy that reverted at a final block (row `reverted`, its nonce used) whose block a
 * deep reorg accepted at the chain's resume took away: the deploy's nonce is unused again, and the
 * wallet's later nonces (a withdrawal signed above it) wait behind it. Its stored bytes are the
 * only transaction ever meant for that nonce, and they mined there: a nonce the chain un-mined is
 * re-sent (DESIGN, "Finality and bad days"). So the signer's gap stage sends them again, as it
 * sends a live deploy's, and the wallet's later nonces mine after them; it had raised `nonce_gap`
 * and left a person to send them by hand. The deploy command, run meanwhile (the signer stopped),
 * signs nothing and names the step that fills the nonce: run the signer. A node below that block
 * is still only behind (revertedDeployNodeNonce.integration.test.ts).
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
let deployTx: Hex;
const DEST = "0x000000000000000000000000000000000000d1d4" as Hex;
const WITHDRAWAL = "behind-undone-deploy";

beforeAll(async () => {
  const set = await startFactoryDeployedSignerTest();
  ({ t, anvilUrl } = set);
  const reverted = await storedDeployRevertedToFinal(t, set.anvilUrl);
  ({ nonce: deployNonce, block: deployBlock } = reverted);
  deployTx = reverted.deploys[0]!.tx_hash;
});

afterAll(async () => {
  await t?.stop();
});

describe("a stored deploy that reverted at a final block a deep reorg undid", () => {
  it("the deploy command names the deploy and the step that fills its nonce, signing nothing", async () => {
    await startSignerAndWithdraw(t, WITHDRAWAL, DEST);
    expect(await signedNonce(t, WITHDRAWAL)).toBe(BigInt(deployNonce + 1));
    expect(await minedStatus(t, WITHDRAWAL)).toBe("confirmed");
    // The deploy command runs with the signer stopped (it takes the wallet's lease).
    await t.signer?.stop();
    t.signer = undefined;

    // The accepted deep reorg: the deploy's block and everything above it replaced by empty blocks.
    const head = await t.client.getBlockNumber();
    await t.rpc("anvil_reorg", [Number(head - deployBlock + 1n), []]);
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(deployNonce);

    let lease: Lease | undefined;
    const send = cliDeploySender(t, anvilUrl, (l) => {
      lease = l;
    });
    try {
      const refused = await send({ name: "Another", data: "0x00" }).catch((e: Error) => e);
      // old code: "... get that deploy's stored bytes mined (raw_tx of its
      // custody.hot_wallet_deploys row, sent with eth_sendRawTransaction; ...)": a person's step
      expect(String(refused)).toMatch(
        new RegExp(
          `stored Reverting deploy at nonce ${deployNonce} .*ended reverted at final block ${deployBlock}.*a deep reorg .*undid that block.*the signer sends that deploy's stored bytes again.*run the signer`,
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

  it("the signer sends the deploy's stored bytes again: its nonce is used, the withdrawal above it mines", async () => {
    const wallet = t.account.address;
    const before = await t.alertCount("nonce_gap", wallet);
    t.signer = t.run();

    // old code: timed out waiting for the undone deploy's nonce used again (the gap stage raised
    // nonce_gap and sent nothing: every later nonce waited for a person)
    await waitFor(
      "the undone deploy's nonce used again",
      async () => {
        await t.rpc("evm_mine");
        return (await t.client.getTransactionCount({ address: wallet })) > deployNonce;
      },
      { timeoutMs: 20_000 },
    );
    // Its stored bytes, not a new signature: the same transaction mined again at that nonce.
    const again = await t.client.getTransaction({ hash: deployTx });
    expect(again.nonce).toBe(deployNonce);
    expect(again.blockNumber).not.toBeNull();
    // The withdrawal whose bytes waited behind it mines again too; nothing new was stored.
    await waitFor("the withdrawal's nonce used again", async () => {
      await t.rpc("evm_mine");
      return (await t.client.getTransactionCount({ address: wallet })) === deployNonce + 2;
    });
    expect(await minedStatus(t, WITHDRAWAL)).toBe("confirmed");
    const { rows } = await t.ctx.db.pool.query(
      "SELECT name, status FROM custody.hot_wallet_deploys ORDER BY id",
    );
    expect(rows).toEqual([{ name: "Reverting", status: "reverted" }]);
    expect(await t.alertCount("nonce_gap", wallet)).toBe(before);
  });
});
