/**
 * The shared-transaction path: callers without a client queue here, and each of `lanes` loops
 * takes whatever accumulated while the previous commit ran (up to `maxBatch` transfers), so many
 * callers cost one lock round each. One lane overlaps its commit with the next one's reads.
 */
import type { TransferInput, TransferResult } from "./types.js";

export type GroupCommit = {
  /** Queues one transfer; resolves with its result once its shared transaction committed. */
  submit: (t: TransferInput) => Promise<TransferResult>;
  /** Waits for the queued transfers. */
  close: () => Promise<void>;
};

type Waiter = {
  t: TransferInput;
  resolve: (r: TransferResult) => void;
  reject: (e: unknown) => void;
};

export function createGroupCommit({
  apply,
  maxBatch,
  lanes,
}: {
  /** Applies one batch in a transaction of its own; one result per transfer. */
  apply: (transfers: readonly TransferInput[]) => Promise<TransferResult[]>;
  maxBatch: number;
  lanes: number;
}): GroupCommit {
  const queue: Waiter[] = [];
  let running = 0;
  const idle: (() => void)[] = [];
  const drain = async () => {
    running++;
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, maxBatch);
        try {
          const results = await apply(batch.map((w) => w.t));
          batch.forEach((w, i) => {
            const r = results[i];
            if (r) w.resolve(r);
            else w.reject(new Error("ledger returned no result"));
          });
        } catch (error) {
          for (const w of batch) w.reject(error);
        }
      }
    } finally {
      running--;
      if (running === 0) for (const f of idle.splice(0)) f();
    }
  };
  return {
    submit: (t) =>
      new Promise((resolve, reject) => {
        // Callers of the shared path do not share fate: a caller's transfer is never linked to another's.
        const { linked: _linked, ...own } = t;
        queue.push({ t: own as TransferInput, resolve, reject });
        if (running < lanes) void drain();
      }),
    async close() {
      if (running === 0) return;
      await new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}
