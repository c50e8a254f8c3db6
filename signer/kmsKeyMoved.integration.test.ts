/**
 * A hot wallet's KMS alias moved to another key (a stack change that made a new key under the same
 * alias, a "rotation" by UpdateAlias) and then the signer restarted: the key it loads has another
 * address. That address is not the hot wallet: the withdrawals, sweeps and in-flight sends are the
 * old address's. Serving the new one would leave them unsigned and unfollowed while the signer
 * reported the wallet loaded and active (no HotWalletNotServed: one wallet configured, one
 * served). The signer refuses a configured key whose address changed: not loaded, counted for
 * KmsKeyUnusable (other_key), and served again once the alias points back.
 */
import { CreateAliasCommand, CreateKeyCommand, UpdateAliasCommand } from "@aws-sdk/client-kms";
import { parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKmsAccount } from "./kmsAccount.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest();
});

afterAll(async () => {
  await t?.stop();
});

async function newKey(): Promise<string> {
  const out = await t.kms.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
  );
  return out.KeyMetadata!.KeyId!;
}

async function otherKeyRefusals(key: string): Promise<number> {
  const m = await t.ctx.common.metrics.registry
    .getSingleMetric("custody_kms_key_refusals_total")
    ?.get();
  return m?.values.find((v) => v.labels.key === key && v.labels.reason === "other_key")?.value ?? 0;
}

/** Until `id` is confirmed (2 blocks deep: anvil mines one per transaction, so one more each poll). */
const confirmed = (id: string) =>
  waitFor(`${id} confirmed`, async () => {
    const status = (await getTxRequest(t.ctx.db.pool, id))?.status;
    if (status === "mined") await t.rpc("evm_mine");
    return status === "confirmed";
  });

describe("a hot wallet alias moved to another key before a restart", () => {
  it("is refused: the signer does not serve the other address, and serves the wallet once the alias is back", async () => {
    const alias = "alias/hot-moved";
    const walletKey = await newKey();
    await t.kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: walletKey }));
    const registry = t.ctx.common.metrics.registry;
    const load = () => createKmsAccount({ kms: t.kms, keyId: alias, registry });
    const wallet = await load();
    await t.rpc("anvil_setBalance", [wallet.address, toHex(parseEther("10"))]);

    // The wallet serves a withdrawal.
    let signer = t.run(wallet);
    await t.withdraw("before-move", { from: wallet.address });
    await confirmed("before-move");
    await signer.stop();

    // The alias now names another key; a withdrawal of the hot wallet waits for the signer.
    await t.kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: await newKey() }));
    await t.withdraw("after-move", { from: wallet.address });
    const moved = await load();
    expect(moved.address).not.toBe(wallet.address);

    // The restarted signer loads the key as the config names it.
    const before = await otherKeyRefusals(alias);
    signer = t.run(moved);
    try {
      // Its first load: refused (counted) or taken as the wallet.
      await waitFor(
        "the restarted signer's first load of the key",
        async () => signer.isLoaded() || (await otherKeyRefusals(alias)) > before,
      );
      expect(signer.isLoaded()).toBe(false);
      expect(await otherKeyRefusals(alias)).toBeGreaterThan(before);
      expect(signer.isActive()).toBe(false);
    } finally {
      await signer.stop();
    }

    // The alias back on the wallet's key: served again, the waiting withdrawal sent.
    await t.kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: walletKey }));
    signer = t.run(await load());
    try {
      await confirmed("after-move");
      expect((await getTxRequest(t.ctx.db.pool, "after-move"))?.nonce).toBe(1n);
    } finally {
      await signer.stop();
    }
  }, 120_000);
});
