/**
 * gaps.ts and a lagging node (DESIGN: missing data is never evidence). The only endpoint falls
 * behind the blocks of the wallet's newest nonces: its mined count says a nonce is unused that the
 * chain used long ago, and its pending count says it holds nothing there. Nothing is unused: the
 * gap stage must neither raise `nonce_gap` nor send a stored deploy's bytes on that count.
 * Real anvil behind the lying proxy, Postgres and the KMS emulator.
 */
import { type Hex, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { readStoredDeploy, storeKilledDeploy } from "./testing/killedDeploy.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;

beforeAll(async () => {
  t = await startLyingSignerTest(1);
});

afterAll(async () => {
  await t?.stop();
});

const rpc = (method: string, params: unknown[] = []) =>
  t.client.request({ method: method as never, params: params as never });
const mined = (address: Hex) => t.client.getTransactionCount({ address });

/** Sends of the wallet's bytes the node refused, by class (the gap stage's deploy sends among them). */
async function refusals(wallet: Hex): Promise<number> {
  const m = await t.ctx.common.metrics.registry
    .getSingleMetric("custody_signer_send_errors_total")
    ?.get();
  return (m?.values ?? [])
    .filter((v) => v.labels.wallet === wallet.toLowerCase())
    .reduce((n, v) => n + v.value, 0);
}

/** Lag the only endpoint until its head is the block before `block`; watch for `ms`. */
async function lagBefore(block: bigint, ms: number, wallet: Hex) {
  const head = await t.client.getBlockNumber(); // not through the proxy's lag: set below
  const refusedBefore = await refusals(wallet);
  const alertsBefore = await t.alertCount("nonce_gap", wallet);
  t.proxy!.setLag(Number(head - block + 1n));
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    t.proxy!.setLag(null);
  }
  return {
    alerts: (await t.alertCount("nonce_gap", wallet)) - alertsBefore,
    refused: (await refusals(wallet)) - refusedBefore,
  };
}

describe("a lagging node's count under the wallet's used nonces", () => {
  it("a nonce used by the wallet's key outside custody, mined: no nonce_gap while the node lags behind it", async () => {
    const account = await t.wallet();
    const first = await mined(account.address);
    // The key's own transaction, mined (a deploy from the dev stack, one before migration 0110, an
    // operator's transfer): no request or stored deploy holds its nonce.
    const raw = await account.signTransaction({
      chainId: t.chain.chainId,
      type: "eip1559",
      to: account.address,
      value: 0n,
      gas: 21_000n,
      nonce: first,
      maxFeePerGas: parseGwei("100"),
      maxPriorityFeePerGas: parseGwei("1"),
    });
    const outside = await t.client.sendRawTransaction({ serializedTransaction: raw });
    const block = (await t.client.waitForTransactionReceipt({ hash: outside })).blockNumber;
    await t.withdraw(["lag-outside"], { from: account.address });
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      await waitFor("the withdrawal confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "lag-outside");
        return r?.status === "confirmed";
      });
      expect((await getTxRequest(t.ctx.db.pool, "lag-outside"))!.nonce).toBe(BigInt(first) + 1n);
      for (let i = 0; i < 3; i++) await rpc("evm_mine");
      const seen = await lagBefore(block, 3_000, account.address);
      expect(seen.alerts).toBe(0);
    } finally {
      await signer.stop();
    }
  });

  it("a stored deploy mined long ago (its row stays broadcast): neither its bytes sent again nor nonce_gap while the node lags behind it", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    await storeKilledDeploy(t, account, "Lagged");
    await t.withdraw(["lag-deploy"], { from: account.address });
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      await waitFor("the withdrawal confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "lag-deploy");
        return r?.status === "confirmed";
      });
      expect((await getTxRequest(t.ctx.db.pool, "lag-deploy"))!.nonce).toBe(first + 1n);
      const deploy = await readStoredDeploy(t.ctx.db.pool, account.address, "Lagged");
      expect(deploy.status).toBe("broadcast");
      const block = (await t.client.getTransactionReceipt({ hash: deploy.txHash })).blockNumber;
      for (let i = 0; i < 3; i++) await rpc("evm_mine");
      const seen = await lagBefore(block, 3_000, account.address);
      expect(seen).toEqual({ alerts: 0, refused: 0 });
    } finally {
      await signer.stop();
    }
  });
});
