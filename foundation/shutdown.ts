/**
 * Shutdown: an AbortController plus callbacks run in reverse registration order
 * (the last thing started is the first thing stopped).
 */
export type Shutdown = {
  signal: AbortSignal;
  isShuttingDown: () => boolean;
  /** Register a stop callback; returns an unregister function. */
  add: (name: string, fn: () => Promise<void> | void) => () => void;
  /** Abort and run every callback; safe to call more than once. */
  kill: (reason?: string) => Promise<void>;
};

export function createShutdown(
  onError: (name: string, error: unknown) => void = () => {},
): Shutdown {
  const controller = new AbortController();
  const callbacks: { name: string; fn: () => Promise<void> | void }[] = [];
  let done: Promise<void> | undefined;
  return {
    signal: controller.signal,
    isShuttingDown: () => controller.signal.aborted,
    add(name, fn) {
      const entry = { name, fn };
      callbacks.push(entry);
      return () => {
        const i = callbacks.indexOf(entry);
        if (i >= 0) callbacks.splice(i, 1);
      };
    },
    kill(reason = "shutdown") {
      if (!done) {
        controller.abort(reason);
        done = (async () => {
          for (const { name, fn } of [...callbacks].reverse()) {
            try {
              await fn();
            } catch (error) {
              onError(name, error);
            }
          }
        })();
      }
      return done;
    },
  };
}
