/**
 * A loopback HTTP proxy in front of a real node that injects faults: HTTP 500, HTTP 429, hangs
 * (timeouts), dropped connections, or a provider-style "too many results" error for wide
 * eth_getLogs ranges. It is a fault injector for tests, not a mock: good requests reach the node.
 *
 * This is the lying chain (chains/testing/lyingChain/) seen through its original, smaller API; the
 * returned proxy also has the lying chain's controls (lag, syncing, null receipts, random fault
 * rates, disagreeing backends).
 */
import { type Backend, type LyingProxy, startLyingProxy } from "./lyingChain/proxy.js";

export type { Backend, Fault, FaultRates, LyingProxy, MethodLie } from "./lyingChain/proxy.js";

export type FaultyProxy = LyingProxy;

export async function startFaultyProxy(target: string | Backend[]): Promise<FaultyProxy> {
  return startLyingProxy(target);
}
