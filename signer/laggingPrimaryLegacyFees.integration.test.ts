/**
 * A legacy-fee chain's gas price (BSC's fee model) when the first endpoint lags (DESIGN: missing
 * data is never evidence). `eth_gasPrice` names no block: intake asked the first endpoint, and a
 * node behind prices gas from its own old blocks, so a send was signed below the head's market and
 * waited for bump after bump. Now the price is asked of a node at or past the head of the node that
 * told the wallet's count and balance, as EIP-1559 fees are (signer/laggingPrimaryEstimate).
 * Real anvil behind the lying proxy, which answers `eth_gasPrice` as a node at its view would.
 */
import { type Hex, parseGwei, toHex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { anvilRpc, setPublishedFinalized } from "../indexers/testing/chain.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;

beforeAll(async () => {
  t = await startLyingSignerTest(1, { chain: { feeModel: "legacy", bumpIntervalMs: 60_000 } });
  const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
  await t.rpc("anvil_mine", ["0x5"]);
  // Our final block published (as the indexer does): the signer then asks every endpoint its head.
  const final = await t.client.getBlock({ blockTag: "latest" });
  await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, final);
  t.chain = { ...t.chain, rpcUrls: [t.proxy!.url, anvilUrl] };
});

afterAll(async () => {
  t.proxy?.setLag(null);
  await t?.stop();
});

it("a send's gas price comes from a node at the head, not a lagging first endpoint", async () => {
  // Two blocks at a low base fee, then two at 100 gwei and less: a node three blocks behind prices
  // gas from the low ones.
  await t.rpc("anvil_mine", ["0x2"]);
  await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("100"))]);
  await t.rpc("anvil_mine", ["0x2"]);
  t.proxy!.setLag(3);
  // The lagging node's own price: of its old blocks.
  const lagging = BigInt(await anvilRpc(t.proxy!.url)<Hex>("eth_gasPrice", []));
  expect(lagging).toBeLessThan(parseGwei("10"));
  t.signer = t.run();
  await t.withdraw("lagging-legacy");
  await waitFor(
    "the send signed",
    async () => (await getTxRequest(t.ctx.db.pool, "lagging-legacy"))?.nonce != null,
  );
  const { rows } = await t.ctx.db.pool.query<{ gas_price: string | null }>(
    "SELECT gas_price::text FROM custody.tx_attempts WHERE request_id = $1",
    ["lagging-legacy"],
  );
  // Old code: the lagging node's price (under 10 gwei), below the next block's base fee (76.5625
  // gwei): no block includes it until bumped.
  expect(BigInt(rows[0]!.gas_price!)).toBeGreaterThanOrEqual(parseGwei("76.5625"));
  expect((await t.confirmedWith("lagging-legacy")).status).toMatch(/confirmed|finalized/);
});
