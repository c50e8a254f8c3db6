/**
 * Node refusals and their one response each, on anvil: bytes that can never be included are
 * rejected and their nonce is used by a cancel (no gap, the request fails); an unfunded wallet
 * keeps its nonce and its stored bytes, alerts, and sends the very same bytes once funded.
 */
import { CreateKeyCommand } from "@aws-sdk/client-kms";
import { parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createKmsAccount, type KmsAccount } from "./kmsAccount.js";
import { getTxRequest, requestTransaction } from "./requests.js";
import { createSignerHarness, RECIPIENT, type SignerHarness, waitFor } from "./testing/harness.js";
import { startWalletSigner } from "./walletSigner.js";

let ctx: TestContext;
let h: SignerHarness;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        // A small block gas limit, so a transaction can ask for more than any block holds.
        anvilArgs: ["--gas-limit", "1000000"],
        config: { confirmations: { kind: "blocks", blocks: 1 } },
      },
    ],
  });
  h = await createSignerHarness(ctx);
});

afterAll(async () => {
  await h?.close();
  await ctx?.cleanup();
});

async function newWallet(balance: bigint): Promise<KmsAccount> {
  const key = await h.kms.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
  );
  const account = await createKmsAccount({ kms: h.kms, keyId: key.KeyMetadata!.KeyId! });
  await h.rpc("anvil_setBalance", [account.address, toHex(balance)]);
  return account;
}

function run(account: KmsAccount) {
  return startWalletSigner({
    common: ctx.common,
    pool: ctx.db.pool,
    queues: ctx.queues,
    chain: ctx.config.chains[0]!,
    account: async () => account,
    databaseUrl: ctx.db.url,
    pollMs: 50,
  });
}

async function alertCount(alert: string, wallet: string): Promise<number> {
  const m = await ctx.common.metrics.registry.getSingleMetric("custody_signer_alerts_total")?.get();
  return (
    m?.values.find((v) => v.labels.alert === alert && v.labels.wallet === wallet.toLowerCase())
      ?.value ?? 0
  );
}

describe("node refusals", () => {
  it("cancels the nonce of bytes a node can never include, fails that request, and goes on", async () => {
    const account = await newWallet(parseEther("10"));
    const signer = run(account);
    try {
      await withTransaction(ctx.db.pool, async (c) => {
        // More gas than a block holds: no node will ever include these bytes.
        await requestTransaction(c, {
          id: "a-too-much-gas",
          chainId: 31337,
          from: account.address,
          to: RECIPIENT,
          value: 1n,
          gasLimit: 2_000_000n,
          kind: "withdrawal",
          refId: "a-too-much-gas",
        });
        await requestTransaction(c, {
          id: "b-next",
          chainId: 31337,
          from: account.address,
          to: RECIPIENT,
          value: 2n,
          kind: "withdrawal",
          refId: "b-next",
        });
      });
      await waitFor("both final", async () => {
        const a = await getTxRequest(ctx.db.pool, "a-too-much-gas");
        const b = await getTxRequest(ctx.db.pool, "b-next");
        if (a?.status === "mined" || b?.status === "mined") await h.rpc("evm_mine");
        return a?.status === "failed" && b?.status === "confirmed";
      });
      const failed = (await getTxRequest(ctx.db.pool, "a-too-much-gas"))!;
      expect(failed.errorCode).toBe("CANCELLED");
      expect(failed.fee).toBe(21_000n * failed.effectiveGasPrice!);
      const cancel = await h.client.getTransaction({ hash: failed.txHash as `0x${string}` });
      expect(cancel.to?.toLowerCase()).toBe(account.address.toLowerCase());
      expect(cancel.value).toBe(0n);
      const { rows } = await ctx.db.pool.query(
        "SELECT purpose, status, last_error_class FROM custody.tx_attempts WHERE request_id = 'a-too-much-gas' ORDER BY id",
      );
      expect(rows).toEqual([
        { purpose: "send", status: "rejected", last_error_class: "gas_limit_too_high" },
        { purpose: "cancel", status: "mined", last_error_class: null },
      ]);
      expect((await getTxRequest(ctx.db.pool, "b-next"))?.nonce).toBe(1n);
      expect(failed.nonce).toBe(0n);
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(2);
      expect(await alertCount("nonce_cancelled", account.address)).toBe(1);
    } finally {
      await signer.stop();
    }
  });

  it("leaves an unfunded wallet's request unsigned (no nonce taken) with an alert, and sends it once funded", async () => {
    const account = await newWallet(0n);
    const signer = run(account);
    try {
      await withTransaction(ctx.db.pool, (c) =>
        requestTransaction(c, {
          id: "unfunded",
          chainId: 31337,
          from: account.address,
          to: RECIPIENT,
          value: 5n,
          kind: "withdrawal",
          refId: "unfunded",
        }),
      );
      await waitFor(
        "low funds alert",
        async () => (await alertCount("insufficient_funds", account.address)) >= 2,
      );
      // The gas estimate and the budget (value + gas x max fee) refuse it before a nonce is taken.
      const waiting = (await getTxRequest(ctx.db.pool, "unfunded"))!;
      expect(waiting.status).toBe("pending");
      expect(waiting.nonce).toBeNull();
      await h.rpc("anvil_setBalance", [account.address, toHex(parseEther("1"))]);
      const done = await waitFor("confirmed", async () => {
        const r = await getTxRequest(ctx.db.pool, "unfunded");
        if (r?.status === "mined") await h.rpc("evm_mine");
        return r?.status === "confirmed" ? r : undefined;
      });
      expect(done.nonce).toBe(0n);
      const { rows } = await ctx.db.pool.query(
        "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'unfunded'",
      );
      expect(rows[0].n).toBe(1);
    } finally {
      await signer.stop();
    }
  });
});
