/**
 * trace_block is asked by number, and every frame must name the block we fetched. An endpoint on a
 * sibling block at that height that is empty answers [] : no frame names another block, yet the
 * answer is not about ours. Two real anvils with the same chain id: ours has a native deposit paid
 * through a contract (an `internal` fact), the other only empty blocks; one transport failure sends
 * the trace read to the other. The deposit must not be lost to that empty answer.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import {
  anvilRpc,
  call,
  deploy,
  freshAddress,
  sendAndMine,
  syncToHead,
  watch,
} from "./testing/chain.js";
import { type FailOnceProxy, startFailOnceProxy } from "./testing/failOnceProxy.js";
import { type IndexerTest, startIndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";

const DEPOSIT = freshAddress(301);
const AMOUNT = 987_654_321n;

let t: IndexerTest;
let other: Anvil;
let proxy: FailOnceProxy;

beforeAll(async () => {
  t = await startIndexerTest();
  other = await startAnvil({ chainId: TEST_CHAIN_ID, port: 0 });
  proxy = await startFailOnceProxy(t.ctx.anvils[0]!.rpcUrl, '"trace_block"');
});

afterAll(async () => {
  await proxy?.close();
  await other?.stop();
  await t?.stop();
});

it("refuses an empty trace answer for a block with transactions", async () => {
  await watch(t.ctx.db.pool, TEST_CHAIN_ID, [{ address: DEPOSIT }]);
  const forwarder = await deploy(t.rpc, t.from, "Forwarder");
  const r = await sendAndMine(t.rpc, {
    from: t.from,
    to: forwarder,
    value: AMOUNT,
    data: call("Forwarder", "forward", [DEPOSIT]),
  });
  // The other node: empty blocks at the same heights, up to our head (a sibling chain; not past
  // ours, or the realtime poll, which asks a node at the best head, would follow it instead).
  const otherRpc = anvilRpc(other.rpcUrl);
  await otherRpc("anvil_mine", [r.blockNumber]);
  expect(await otherRpc("trace_block", [r.blockNumber])).toEqual([]);

  const ingestor = await t.ingestor({ chain: { ...t.chain, rpcUrls: [proxy.url, other.rpcUrl] } });
  // The pass whose trace read went to the other node stores nothing, or stores the fact.
  await ingestor.syncOnce().catch(() => {});
  expect(proxy.failed()).toBe(1);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the first endpoint's cool-down
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
  const { rows } = await t.ctx.db.pool.query<{ kind: string; amount: string }>(
    "SELECT kind, amount::text FROM chain.transfers WHERE tx_hash = $1 AND to_address = $2",
    [r.transactionHash.toLowerCase(), DEPOSIT.toLowerCase()],
  );
  expect(rows).toEqual([{ kind: "internal", amount: AMOUNT.toString() }]);
  // The balance really moved (what reconciliation would see without the fact).
  expect(BigInt(await t.rpc<Hex>("eth_getBalance", [DEPOSIT, "latest"]))).toBe(AMOUNT);
  await ingestor.stop();
});
