/**
 * The start's token check reads at the best head of all endpoints: a first endpoint that lags (a
 * provider's backend behind, answering as if its head were 5 blocks back) set the height it read
 * at, and a token deployed since showed "no contract", a config problem that is none (the start
 * refused). Real anvil, the first endpoint a lagging proxy in front of it, the second the anvil.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { anvilRpc, deploy } from "../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { createRpcClient } from "./rpc.js";
import { type FaultyProxy, startFaultyProxy } from "./testing/faultyProxy.js";
import { checkTokens } from "./tokenCheck.js";

let anvil: Anvil;
let lagging: FaultyProxy;

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 31337, port: 0 });
  lagging = await startFaultyProxy(anvil.rpcUrl);
});

afterAll(async () => {
  await lagging?.close();
  await anvil?.stop();
});

it("a token deployed within a first endpoint's lag is found (read at the best head of all endpoints)", async () => {
  const rpc = anvilRpc(anvil.rpcUrl);
  const [from] = await rpc<Hex[]>("eth_accounts");
  await rpc("anvil_mine", ["0xa"]);
  const token = await deploy(rpc, from!, "TestToken", [1_000n]);
  lagging.setLag(5);
  const client = createRpcClient({ chainId: 31337, urls: [lagging.url, anvil.rpcUrl] });
  // before the fix: problems [{ field: "tokens[0].address", message: "there is no contract at
  // 0x… on this chain (block 6): …" }] (the first endpoint's head, 5 blocks behind)
  // (TestToken has no decimals(): its code is what is checked.)
  expect(await checkTokens(client, [{ address: token, decimals: 18 }])).toEqual({
    problems: [],
    unchecked: [token],
  });
});
