/**
 * The plain viem clients the rest of the system may need besides an adapter (createEvmAdapter.ts):
 * a client on one URL for a quick question (a head for a status page, a log query for `por
 * verify`, a dev-stack's funding), and the new-heads subscription over WebSocket that wakes an
 * indexer. They live here so that chains/ is the only place a viem client or transport is built.
 */
import { createPublicClient, http, type PublicClient, webSocket } from "viem";

/** A client on one HTTP endpoint: no fallback, viem's own retries unless `retryCount` says. */
export function publicClientFor(
  url: string,
  options: { timeoutMs?: number; retryCount?: number; cacheTime?: number } = {},
): PublicClient {
  return createPublicClient({
    ...(options.cacheTime !== undefined ? { cacheTime: options.cacheTime } : {}),
    transport: http(url, {
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      ...(options.retryCount !== undefined ? { retryCount: options.retryCount } : {}),
    }),
  }) as PublicClient;
}

/**
 * Calls `onHead` for each new head the WebSocket endpoint announces (reconnecting, with keep-alive).
 * Returns the stop, which also closes the socket (viem shares it per URL; closing stops its
 * reconnect timers).
 */
export function watchNewHeads(
  wsUrl: string,
  handlers: { onHead: () => void; onError: (err: Error) => void },
): () => Promise<void> {
  const transport = webSocket(wsUrl, { reconnect: true, keepAlive: true, retryCount: 5 });
  const client = createPublicClient({ transport });
  const unwatch = client.watchBlockNumber({
    onBlockNumber: () => handlers.onHead(),
    onError: handlers.onError,
  });
  return async () => {
    unwatch();
    await client.transport
      .getRpcClient()
      .then((c) => c.close())
      .catch(() => {});
  };
}
