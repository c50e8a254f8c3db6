/**
 * A sweep is settled from the Swept events of its transaction, read by its block's hash. A node
 * that does not know the hash may answer eth_getLogs with no logs (geth refuses; others do not):
 * read as "no Swept event", the sweep was booked as having moved nothing (the deposit address's
 * money stayed on custody:deposits while it sat in the hot wallet). No logs is believed only from
 * an endpoint that shows it has the block; the read moves on. Real anvil, Postgres, KMS emulator,
 * indexer, crediting and signer; the lying node is a proxy in front of the same anvil.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/index.js";
import { getTxRequest } from "../requests.js";
import { waitFor } from "../testing/harness.js";
import { CHAIN_ID, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;
let proxy: LyingProxy;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
  s.startSigner();
  proxy = await startLyingProxy(s.ctx.config.chains[0]!.rpcUrls[0]!);
});

afterAll(async () => {
  await proxy?.close();
  await s?.close();
});

it("settles a sweep from its Swept events when the first node answers an unknown block hash with no logs", async () => {
  const amount = 4n * 10n ** 17n;
  await s.creditedDeposit("carol", amount);
  const depositsBefore = await s.balanceOf(NATIVE, "custody:deposits");
  const tick = await s.sweeper.tick(CHAIN_ID);
  expect(tick.started).toHaveLength(1);
  const id = tick.started[0]!.id;

  // The lying node first: it knows no block by hash (no logs, no block); the real node second.
  let lied = 0;
  proxy.setMethodLie("eth_getLogs", (real, params) => {
    if (!(params[0] as { blockHash?: Hex }).blockHash) return real as { result: unknown };
    lied++;
    return { result: [] };
  });
  proxy.setMethodLie("eth_getBlockByHash", () => ({ result: null }));
  const { sweeper } = s.sweeperOn([proxy.url, s.ctx.config.chains[0]!.rpcUrls[0]!]);
  await s.settleOne(sweeper, id);
  expect(lied).toBeGreaterThan(0);
  // The deposit address's money left custody:deposits for the hot wallet: booked as swept.
  expect(depositsBefore - (await s.balanceOf(NATIVE, "custody:deposits"))).toBe(amount);
});

it("waits, without failing the chain's pass, while every endpoint refuses the logs of the sweep's block", async () => {
  proxy.setMethodLie("eth_getLogs", null);
  proxy.setMethodLie("eth_getBlockByHash", null);
  const amount = 3n * 10n ** 17n;
  await s.creditedDeposit("dave", amount);
  const depositsBefore = await s.balanceOf(NATIVE, "custody:deposits");
  const tick = await s.sweeper.tick(CHAIN_ID);
  expect(tick.started).toHaveLength(1);
  const id = tick.started[0]!.id;

  // The only endpoint refuses eth_getLogs by block hash (a provider's error, never evidence).
  let refused = 0;
  proxy.setMethodLie("eth_getLogs", (real, params) => {
    if (!(params[0] as { blockHash?: Hex }).blockHash) return real as { result: unknown };
    refused++;
    return { error: { code: -32000, message: "internal error" } };
  });
  const { sweeper } = s.sweeperOn([proxy.url]);
  await waitFor("the sweep confirmed", async () => {
    await s.mine(1);
    return (await getTxRequest(s.ctx.db.pool, id))?.status === "confirmed";
  });
  // The pass goes on (a throw here stopped the chain's cold moves and new sweeps every tick).
  expect(await sweeper.tick(CHAIN_ID)).toMatchObject({ settled: [] });
  expect(refused).toBeGreaterThan(0);
  const statusOf = async () =>
    (await s.ctx.db.pool.query("SELECT status FROM custody.sweeps WHERE id = $1", [id])).rows[0]
      .status;
  expect(await statusOf()).toBe("open");

  proxy.setMethodLie("eth_getLogs", null);
  await sweeper.settle(CHAIN_ID);
  expect(await statusOf()).toBe("booked");
  expect(depositsBefore - (await s.balanceOf(NATIVE, "custody:deposits"))).toBe(amount);
});
