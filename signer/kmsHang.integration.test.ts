/**
 * KMS that stops answering (a black-holed connection to the KMS endpoint): the broadcaster's tick
 * signs new requests before it follows the sent ones, so a Sign call that never returns must not
 * hold the wallet's tick for long: a mined withdrawal must still be confirmed, and the request
 * waiting on KMS signed once the call is given up and tried again. The KMS emulator sits behind a
 * proxy that holds one Sign call and never answers it.
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKmsClient } from "./kmsAccount.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type KmsProxy, startKmsProxy } from "./testing/kmsProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let kmsProxy: KmsProxy;

beforeAll(async () => {
  // Confirmed 2 blocks deep; anvil mines one block per transaction (automine) and on evm_mine.
  t = await startSignerTest();
  kmsProxy = await startKmsProxy(t.kmsUrl);
});

afterAll(async () => {
  await kmsProxy?.close();
  await t?.stop();
});

const status = async (id: string) => (await getTxRequest(t.ctx.db.pool, id))?.status;

describe("a KMS Sign call that is never answered", () => {
  it("does not stop the signer following what it sent: the mined one is confirmed, the held one signed on a retry", async () => {
    const kms = createKmsClient({ region: "us-east-1", endpoint: kmsProxy.url });
    const account = await t.wallet(parseEther("10"), kms);
    const signer = t.run(account);
    let sign: { reached: Promise<void>; release: () => void } | undefined;
    try {
      await t.withdraw("sent-before", { from: account.address });
      // Sent and mined (one block: not yet confirmed).
      await waitFor("the first withdrawal mined", async () => {
        const s = await status("sent-before");
        return s === "mined" || s === "broadcast";
      });
      expect(await status("sent-before")).not.toBe("confirmed");
      // KMS now swallows the next Sign call: no answer, no error, the connection left open.
      sign = kmsProxy.holdNext("Sign");
      const signsBefore = kmsProxy.calls("Sign");
      await t.withdraw("signed-during-hang", { from: account.address });
      await sign.reached;
      // The block that confirms the first withdrawal.
      await t.rpc("evm_mine");
      await t.rpc("evm_mine");
      await waitFor(
        "the first withdrawal confirmed while KMS hangs",
        async () => (await status("sent-before")) === "confirmed",
        { timeoutMs: 45_000 },
      );
      // The hung call was given up and Sign asked again: the request signed once, at the next nonce.
      const held = await waitFor(
        "the held request signed on a retry",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "signed-during-hang");
          return r && r.status !== "pending" ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(held.nonce).toBe(1n);
      expect(kmsProxy.calls("Sign") - signsBefore).toBeGreaterThanOrEqual(2);
    } finally {
      sign?.release();
      await signer.stop();
      kms.destroy();
    }
  }, 120_000);
});
