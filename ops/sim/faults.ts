/**
 * The lies a scenario's two endpoints tell about the chain (not about sends): a flaky or down
 * primary, a lagging or syncing node, receipts withheld, a load balancer whose backends disagree,
 * and a primary whose answers lose data without an error: blocks without their transactions (their
 * header says otherwise), ranged eth_getLogs answered empty, and (with `cutLogs`) ranged answers cut
 * short by their last log. Each is one the indexer is built to see through (transactionsRoot, the
 * block's bloom, the receipt of a direct transfer() to a watched address); the scenario then checks
 * that nothing was lost. `change` draws one from the scenario's schedule (`rng`; flaky rates from
 * their own stream) and applies it; `clear` makes both endpoints honest again.
 */
import type { LyingProxy, MethodLie } from "../../chains/testing/lyingChain/proxy.js";
import type { Random } from "./random.js";

export type EndpointFaults = {
  /** Draw and apply the next fault; returns its name. */
  change: () => string;
  clear: () => void;
};

/** The real node's answer, passed on unchanged. */
const answered = (real: Parameters<MethodLie>[0]) =>
  real.error ? { error: real.error } : { result: real.result };

export function endpointFaults({
  primary,
  fallback,
  anvilUrl,
  rng,
  faultStream,
  finality,
  trace,
  cutLogs = false,
}: {
  primary: LyingProxy;
  fallback: LyingProxy;
  anvilUrl: string;
  rng: Random;
  /** The flaky primary's per-request draws (their own stream: the schedule stays as it was). */
  faultStream: Random;
  finality: number;
  trace: (line: string) => void;
  /**
   * Also draw `primaryCutsLogs`. Only where every log a custody address must see comes from a
   * direct transfer() (deposits): a cut log of a contract's inner transfer (a sweep) leaves no
   * trace an indexer could check, so a scenario with sweeps would report a lie, not a bug.
   */
  cutLogs?: boolean;
}): EndpointFaults {
  const clear = () => {
    for (const p of [primary, fallback]) {
      p.setFault("none");
      p.setFaultRates(null);
      p.setBackends([{ url: anvilUrl }]);
      p.setDropRangeLogs(false);
      p.setMethodLie("eth_getBlockByNumber", null);
      p.setMethodLie("eth_getLogs", null);
    }
  };
  const change = () => {
    const what = rng.weighted({
      primaryFlaky: 3,
      primaryDown: 1,
      primaryLagging: 1,
      primarySyncing: 1,
      primaryNullReceipts: 1,
      fallbackLagging: 2,
      fallbackSyncing: 1,
      fallbackDisagree: 2,
      fallbackNullReceipts: 1,
      primaryBodiless: 1,
      primaryDropsLogs: 1,
      primaryCutsLogs: cutLogs ? 1 : 0,
      clear: 2,
    });
    const lag = rng.int(1, finality + 6);
    trace(`  faults: ${what} (lag ${lag})`);
    switch (what) {
      case "primaryFlaky":
        primary.setFault("none");
        primary.setFaultRates(
          {
            http500: rng.int(5, 30) / 100,
            http429: rng.int(0, 15) / 100,
            timeout: rng.int(0, 4) / 100,
            drop: rng.int(0, 5) / 100,
          },
          faultStream.next,
        );
        break;
      case "primaryDown":
        primary.setFault(rng.pick(["http500", "http429", "drop"] as const));
        break;
      case "primaryLagging":
        primary.setBackends([{ url: anvilUrl, lag }]);
        break;
      case "primarySyncing":
        primary.setBackends([{ url: anvilUrl, lag: "syncing" }]);
        break;
      case "primaryNullReceipts":
        primary.setBackends([{ url: anvilUrl, nullReceipts: true }]);
        break;
      case "fallbackLagging":
        fallback.setBackends([{ url: anvilUrl, lag }]);
        break;
      case "fallbackSyncing":
        fallback.setBackends([{ url: anvilUrl, lag: "syncing" }]);
        break;
      case "fallbackDisagree":
        fallback.setBackends([{ url: anvilUrl }, { url: anvilUrl, lag }]);
        break;
      case "fallbackNullReceipts":
        fallback.setBackends([{ url: anvilUrl, nullReceipts: true }]);
        break;
      case "primaryBodiless":
        primary.setMethodLie("eth_getBlockByNumber", (real, params) => {
          const block = real.result as { transactions?: unknown[] } | null | undefined;
          if (params[1] !== true || !block?.transactions?.length) return answered(real);
          return { result: { ...block, transactions: [] } };
        });
        break;
      case "primaryDropsLogs":
        primary.setDropRangeLogs(true);
        break;
      case "primaryCutsLogs":
        primary.setMethodLie("eth_getLogs", (real, params) => {
          const ranged = (params[0] as { blockHash?: string } | undefined)?.blockHash === undefined;
          if (!ranged || !Array.isArray(real.result) || real.result.length < 2)
            return answered(real);
          return { result: real.result.slice(0, -1) };
        });
        break;
      case "clear":
        clear();
        break;
    }
    return what;
  };
  return { change, clear };
}
