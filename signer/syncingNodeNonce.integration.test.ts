/**
 * The signer's first nonce is not taken from a node below the indexed tip (DESIGN: missing data is
 * never evidence; a node behind our stored tip is not asked for what it lacks). The hot wallet's
 * first transaction is its ForwarderFactory deploy, outside the signer's requests. The signer
 * (re)starts while its first endpoint is down and the other is syncing (head 0): the only count it
 * can read is 0, as of block 0, while the chain (and the index, past the deploy's block) has used
 * nonce 0. Taken as the next nonce, a request signed at 0 is refused "nonce too low", its nonce is
 * consumed by a transaction it does not know, and it ends in needs_review. Found by
 * `npm run sim -- sweeps --seed 74001` (laggingNodeNonce.integration.test.ts: one node lagging).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/index.js";
import type { Ingestor } from "../indexers/index.js";
import { getTxRequest } from "./requests.js";
import {
  minedStatus,
  signedNonce,
  startFactoryDeployedSignerTest,
  startSignerAndWithdraw,
} from "./testing/factoryDeployed.js";
import type { SignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let down: LyingProxy;
let syncing: LyingProxy;
let ingestor: Ingestor | undefined;
const DEST = "0x000000000000000000000000000000000000d1d2" as Hex;

beforeAll(async () => {
  // The indexer has ingested past the deploy's block.
  const set = await startFactoryDeployedSignerTest({ indexed: true });
  ({ t, ingestor } = set);
  const { anvilUrl } = set;
  down = await startLyingProxy(anvilUrl);
  down.setFault("http500");
  syncing = await startLyingProxy(anvilUrl);
  syncing.setLag("syncing");
  t.chain = { ...t.chain, rpcUrls: [down.url, syncing.url] };
});

afterAll(async () => {
  await ingestor?.stop();
  await t?.stop();
  await down?.close();
  await syncing?.close();
});

describe("a signer started while its only answering node is syncing", () => {
  it("signs nothing until a node at the indexed tip answers, then the chain's next nonce", async () => {
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(1);
    await startSignerAndWithdraw(t, "while-syncing", DEST);
    // Long enough for several resync attempts (a failed session restarts after 1 s).
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await getTxRequest(t.ctx.db.pool, "while-syncing"))?.nonce ?? null).toBeNull();

    down.setFault("none");
    expect(await signedNonce(t, "while-syncing")).toBe(1n);
    expect(await minedStatus(t, "while-syncing")).toBe("confirmed");
  });
});
