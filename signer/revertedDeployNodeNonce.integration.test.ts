/**
 * A stored deploy's nonce is used or held whatever its row's status (DESIGN: missing data is never
 * evidence). The hot wallet's newest transaction is a CLI deploy (signer/storedDeploy.ts) that
 * reverted at a final block: its row is `reverted`, its nonce used on chain, and no request holds
 * it. The signer (re)starts while its only node is behind that deploy's block, though at the
 * indexed tip (the indexer behind too), so resync asks it (77afca9): its count leaves the deploy's
 * nonce out. Taken as the next nonce, a withdrawal signed there is refused "nonce too low", its
 * nonce consumed by a transaction it does not know, and it ends in needs_review: a customer's
 * withdrawal held until an operator acts. The stored deploy must keep resync above it; nor may the
 * gap stage read that node's count as the deploy's nonce left unused (a `nonce_gap` sending a
 * person to look for a transaction of the key from outside custody).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/index.js";
import type { Ingestor } from "../indexers/index.js";
import {
  minedStatus,
  signedNonce,
  startFactoryDeployedSignerTest,
  startSignerAndWithdraw,
  storedDeployRevertedToFinal,
} from "./testing/factoryDeployed.js";
import { waitFor } from "./testing/harness.js";
import type { SignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let lagging: LyingProxy;
let ingestor: Ingestor | undefined;
let deployNonce: number;
let deployBlock: bigint;
const DEST = "0x000000000000000000000000000000000000d1d3" as Hex;

beforeAll(async () => {
  // The indexer ingests up to here: the deploy's block will be above its tip.
  const set = await startFactoryDeployedSignerTest({ indexed: true });
  ({ t, ingestor } = set);
  const { anvilUrl } = set;
  const tip = await t.client.getBlockNumber();

  // The wallet's next transaction: the CLI's stored deploy, reverted, followed until final.
  const deploy = await storedDeployRevertedToFinal(t, anvilUrl);
  ({ nonce: deployNonce, block: deployBlock } = deploy);
  expect(deploy.deploys).toMatchObject([{ nonce: deployNonce, status: "reverted" }]);
  expect(deployBlock).toBeGreaterThan(tip);

  // The signer's only node answers as if its head were the block before the deploy's: at or past
  // the indexed tip, so resync asks it.
  lagging = await startLyingProxy(anvilUrl);
  lagging.setLag(Number((await t.client.getBlockNumber()) - deployBlock + 1n));
  t.chain = { ...t.chain, rpcUrls: [lagging.url] };
});

afterAll(async () => {
  await ingestor?.stop();
  await t?.stop();
  await lagging?.close();
});

describe("a wallet whose newest transaction is a stored deploy that reverted", () => {
  it("gets its next request signed above the deploy's nonce while the only node is behind it, which confirms", async () => {
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(
      deployNonce + 1,
    );
    await startSignerAndWithdraw(t, "after-reverted-deploy", DEST);
    expect(await signedNonce(t, "after-reverted-deploy")).toBe(BigInt(deployNonce + 1));

    lagging.setLag(null);
    expect(await minedStatus(t, "after-reverted-deploy")).toBe("confirmed");
  });

  it("raises no nonce_gap for the deploy's nonce on a signer started while its only node is behind the deploy", async () => {
    await t.signer?.stop();
    // A new signer (its rpc client has seen no head above the lagging node's) with a short stall
    // time: the gap stage would alert on the deploy's nonce within 300 ms.
    lagging.setLag(Number((await t.client.getBlockNumber()) - deployBlock + 1n));
    const wallet = t.account.address;
    const before = await t.alertCount("nonce_gap", wallet);
    t.signer = t.run(t.account, { settings: { stallResendMs: 300 } });
    try {
      await waitFor("the lease held", async () => t.signer!.isActive());
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await t.alertCount("nonce_gap", wallet)).toBe(before);
    } finally {
      lagging.setLag(null);
    }
  });
});
