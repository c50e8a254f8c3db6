/**
 * The lies a scenario's two endpoints tell about the chain (not about sends): a flaky or down
 * primary, a lagging or syncing node, receipts withheld, a load balancer whose backends disagree.
 * `change` draws one from the scenario's schedule (`rng`; flaky rates from their own stream) and
 * applies it; `clear` makes both endpoints honest again.
 */
import type { LyingProxy } from "../../chains/testing/lyingChain/proxy.js";
import type { Random } from "./random.js";

export type EndpointFaults = {
  /** Draw and apply the next fault; returns its name. */
  change: () => string;
  clear: () => void;
};

export function endpointFaults({
  primary,
  fallback,
  anvilUrl,
  rng,
  faultStream,
  finality,
  trace,
}: {
  primary: LyingProxy;
  fallback: LyingProxy;
  anvilUrl: string;
  rng: Random;
  /** The flaky primary's per-request draws (their own stream: the schedule stays as it was). */
  faultStream: Random;
  finality: number;
  trace: (line: string) => void;
}): EndpointFaults {
  const clear = () => {
    for (const p of [primary, fallback]) {
      p.setFault("none");
      p.setFaultRates(null);
      p.setBackends([{ url: anvilUrl }]);
    }
  };
  const change = () => {
    const what = rng.weighted({
      primaryFlaky: 3,
      primaryDown: 1,
      primaryLagging: 1,
      primaryNullReceipts: 1,
      fallbackLagging: 2,
      fallbackSyncing: 1,
      fallbackDisagree: 2,
      fallbackNullReceipts: 1,
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
      case "clear":
        clear();
        break;
    }
    return what;
  };
  return { change, clear };
}
