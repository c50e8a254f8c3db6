/**
 * The signer's first nonce for a wallet is not taken from a lagging node (DESIGN: missing data is
 * never evidence). The hot wallet's first transaction is its ForwarderFactory deploy, sent before
 * any signer runs and not one of the signer's requests (the dev stack's and tests' deploy; the
 * CLI's stored deploy is not in custody.tx_requests either). When the signer starts, its first
 * endpoint lags behind the deploy's block: that node's pending count is 0, while the chain has
 * used nonce 0. A first request signed at nonce 0 is refused "nonce too low", its nonce is
 * consumed by a transaction it does not know, and it ends in needs_review: a sweep (or a
 * withdrawal) held until an operator acts. Found by `npm run sim -- sweeps --seed 10`.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/index.js";
import {
  minedStatus,
  signedNonce,
  startFactoryDeployedSignerTest,
  startSignerAndWithdraw,
} from "./testing/factoryDeployed.js";
import type { SignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let lagging: LyingProxy;
const DEST = "0x000000000000000000000000000000000000d1d1" as Hex;

beforeAll(async () => {
  const { t: test, anvilUrl } = await startFactoryDeployedSignerTest();
  t = test;
  // The first endpoint answers as if its head were 10 blocks back: before the deploy.
  lagging = await startLyingProxy(anvilUrl);
  lagging.setLag(10);
  t.chain = { ...t.chain, rpcUrls: [lagging.url, anvilUrl] };
});

afterAll(async () => {
  await t?.stop();
  await lagging?.close();
});

describe("a wallet whose newest transaction a lagging node does not have yet", () => {
  it("gets its first request signed at the chain's next nonce, which confirms", async () => {
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(1);
    await startSignerAndWithdraw(t, "after-deploy", DEST);
    expect(await signedNonce(t, "after-deploy")).toBe(1n);
    expect(await minedStatus(t, "after-deploy")).toBe("confirmed");
  });
});
