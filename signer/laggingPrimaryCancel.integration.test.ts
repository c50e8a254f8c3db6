/**
 * A cancel's fees when the first endpoint lags (DESIGN: missing data is never evidence). The
 * canceller asked `eth_feeHistory` (and the cancel's gas estimate) at `latest` of the first
 * endpoint, whatever its head: after a fee spike, a node behind it tells the base fee from before,
 * and the cancel of a nonce every node refused was priced below the head's base fee (its bytes
 * waited in the pool, the wallet's later nonces behind them, until the bump stage raised them).
 * Now both are asked at the head of the node the tick's snapshot came from.
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/index.js";
import { setPublishedFinalized } from "../indexers/testing/chain.js";
import { createKmsClient } from "./kmsAccount.js";
import { waitFor } from "./testing/harness.js";
import { type KmsProxy, startKmsProxy } from "./testing/kmsProxy.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<LyingProxy>;
let kmsProxy: KmsProxy;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      anvilArgs: SMALL_BLOCKS,
      config: {
        confirmations: { kind: "blocks", blocks: 1 },
        reorgWindow: 3,
        bumpIntervalMs: 60_000,
      },
    },
    proxy: startLyingProxy,
  });
  kmsProxy = await startKmsProxy(t.kmsUrl);
  // Blocks before the spike below: a node behind the head must have a history of its own.
  await t.rpc("anvil_mine", ["0x5"]);
  // Our final block published (as the indexer does): the signer then asks every endpoint its head
  // and takes the snapshot from a node that shows that block.
  const final = await t.client.getBlock({ blockTag: "latest" });
  await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, final);
  t.chain = { ...t.chain, rpcUrls: [t.proxy!.url, t.ctx.config.chains[0]!.rpcUrls[0]!] };
});

afterAll(async () => {
  t?.proxy?.setLag(null);
  await kmsProxy?.close();
  await t?.stop();
});

describe("a cancel with the first endpoint behind the head", () => {
  it("is priced at the head's market", async () => {
    const kms = createKmsClient({ region: "us-east-1", endpoint: kmsProxy.url });
    const account = await t.wallet(parseEther("10"), kms);
    // Sign #1 is the dead request's bytes, #2 the first cancel of its nonce: that one fails, and
    // the next is priced after the backoff.
    kmsProxy.failNth("Sign", kmsProxy.calls("Sign") + 2);
    const signer = t.run(account, {
      settings: { cancelBackoffMs: 3_000, maxCancelBackoffMs: 3_000, maxCancelAttempts: 3 },
    });
    try {
      // More gas than a block holds: no node will ever include these bytes.
      await t.withdraw("dead", { from: account.address, gasLimit: 2_000_000n });
      await waitFor("the first cancel's signature failed", async () => kmsProxy.failed() > 0);
      const { rows: sent } = await t.ctx.db.pool.query<{ max_fee_per_gas: string }>(
        "SELECT max_fee_per_gas::text FROM custody.tx_attempts WHERE request_id = 'dead'",
      );
      // A spike past what the dead send paid: two blocks, then a node three blocks behind (its
      // history ends before the spike) is the first endpoint when the cancel is priced.
      const spike = BigInt(sent[0]!.max_fee_per_gas) * 4n;
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [`0x${spike.toString(16)}`]);
      await t.rpc("anvil_mine", ["0x2"]);
      t.proxy!.setLag(3);
      const cancel = await waitFor(
        "the cancel signed",
        async () =>
          (
            await t.ctx.db.pool.query<{ max_fee_per_gas: string }>(
              `SELECT max_fee_per_gas::text FROM custody.tx_attempts
                WHERE request_id = 'dead' AND purpose = 'cancel' ORDER BY id LIMIT 1`,
            )
          ).rows[0],
        { timeoutMs: 15_000 },
      );
      // old code: expected 1173363282 to be greater than or equal to 3144629733 (the dead send's
      // max fee raised by 10%, the lagging node's market lower still: below the next base fee).
      expect(BigInt(cancel.max_fee_per_gas)).toBeGreaterThanOrEqual(
        (spike * 875n * 875n) / 1_000_000n,
      );
    } finally {
      await signer.stop();
      t.proxy!.setLag(null);
      kms.destroy();
    }
  });
});
