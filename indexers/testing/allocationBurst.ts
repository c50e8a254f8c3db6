/**
 * An allocation burst from another thread (ops/bench/indexerScale.ts): allocations come from the
 * API, a process of its own, so they must not share the indexer's event loop in a measurement of
 * how much they stall it. Each allocation is one transaction, insert + notification, as
 * indexers/depositAddresses allocates; `concurrency` at a time over their own pool.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createPool, withTransaction } from "../../foundation/db.js";
import { notifyWatchedAddress } from "../watched.js";

export type AllocationBurst = {
  url: string;
  chainId: number;
  addresses: string[];
  concurrency: number;
  /** "chain": the chain-only notification older callers send. */
  notify: "address" | "chain";
};

async function run({ url, chainId, addresses, concurrency, notify }: AllocationBurst) {
  const pool = createPool(url, { max: concurrency, applicationName: "scale-allocator" });
  try {
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < addresses.length) {
        const a = addresses[next++]!;
        await withTransaction(pool, async (c) => {
          await c.query(
            `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
             VALUES ($1, $2, 'deposit', 'burst')`,
            [chainId, a],
          );
          await notifyWatchedAddress(c, chainId, notify === "chain" ? undefined : [a]);
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return performance.now() - t0;
  } finally {
    await pool.end();
  }
}

if (parentPort && workerData) {
  const port = parentPort;
  run(workerData as AllocationBurst).then(
    (ms) => port.postMessage({ ms }),
    (err) => port.postMessage({ error: String(err?.stack ?? err) }),
  );
}
