/**
 * A stored CLI deploy priced out of a legacy-fee chain's market (BSC's fee model) while the first
 * endpoint lags behind the rise. The signer's gap stage (broadcaster/gaps.ts) replaces it at the
 * market of the tick's head (a node at the best head counted the wallet), as bump.ts prices a
 * request's replacement: before, the market was the first endpoint's `eth_gasPrice`, a node
 * behind pricing gas from its own old blocks, and each replacement rose only the 10% the pool's
 * rule asks, still under the base fee: refused again and again while every later nonce of the
 * wallet waited. Real anvil behind the lying proxy (a lagging view answers `eth_gasPrice` as a node
 * there), Postgres and the KMS emulator.
 */
import { type Hex, parseGwei, parseTransaction, toHex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { setPublishedFinalized } from "../indexers/testing/chain.js";
import { waitFor } from "./testing/harness.js";
import { readStoredDeploy, storeKilledDeploy } from "./testing/killedDeploy.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;

beforeAll(async () => {
  t = await startLyingSignerTest(1, { chain: { feeModel: "legacy", bumpIntervalMs: 60_000 } });
  await t.rpc("anvil_mine", ["0x5"]);
  // Our final block published (as the indexer does): the signer then asks every endpoint its head.
  const final = await t.client.getBlock({ blockTag: "latest" });
  await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, final);
});

afterAll(async () => {
  t.proxy?.setLag(null);
  await t?.stop();
});

it("a priced-out deploy is replaced at the head's gas price, not a lagging first endpoint's", async () => {
  const account = await t.wallet();
  // Stored and never sent (the CLI killed after its commit), signed at today's low price.
  const stored = await storeKilledDeploy(t, account, "LaggingPricedOut");
  const signedAt = parseTransaction(stored.rawTx).gasPrice!;
  expect(signedAt).toBeLessThan(parseGwei("10"));
  // Three blocks at a low base fee, then two at 100 gwei and less: the stored bytes are below the
  // next base fee, and a node three blocks behind prices gas from the low ones.
  await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("1"))]);
  await t.rpc("anvil_mine", ["0x3"]);
  await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("100"))]);
  await t.rpc("anvil_mine", ["0x2"]);
  const nextBaseFee = (await t.client.getBlock({ blockTag: "pending" })).baseFeePerGas!;
  const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
  const chain = { ...t.chain, rpcUrls: [t.proxy!.url, anvilUrl] };
  t.proxy!.setLag(3);
  const signer = t.run(account, { chain, settings: { stallResendMs: 300 } });
  try {
    const replaced = await waitFor(
      "the deploy replaced",
      async () => {
        const row = await readStoredDeploy(t.ctx.db.pool, account.address, "LaggingPricedOut");
        return row.txHash === stored.txHash ? undefined : row;
      },
      { timeoutMs: 20_000 },
    );
    expect(replaced.earlierTxHashes).toEqual([stored.txHash]);
    const first = parseTransaction(replaced.rawTx as Hex);
    expect(first.type).toBe("legacy");
    // Old code: the lagging node's price raised 10% (a few gwei), below the 76.6 gwei base fee.
    expect(first.gasPrice!).toBeGreaterThanOrEqual(nextBaseFee);
  } finally {
    t.proxy!.setLag(null);
    await signer.stop();
  }
});
