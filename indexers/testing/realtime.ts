/**
 * Measures what following the head costs: anvil mines a block every `blockTimeMs` (interval
 * mining), each holding one ERC-20 Transfer of a listed token to a watched address; an ingestor
 * runs its normal loop (default poll interval for the chain) from a synced tip, and the RPC calls
 * it sends (idle polls included) are divided by the blocks it stores, counted from the first block
 * it stores after starting (the warm-up: until interval mining's first block, polls find nothing).
 * Used by indexer.bench.ts; test-only.
 */
import type { Hex } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import { createEvmAdapter } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import { createIngestor } from "../createIngestor.js";
import { loadTip } from "../store.js";
import { anvilRpc, call, syncToHead } from "./chain.js";

export async function measureRealtime({
  common,
  pool,
  chain,
  from,
  token,
  to,
  blocks,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  from: Hex;
  token: Hex;
  to: Hex;
  blocks: number;
}): Promise<{ callsPerBlock: number; blocks: number; wsHeads: number }> {
  const rpc = anvilRpc(chain.rpcUrls[0]!);
  const adapter = createEvmAdapter(chain, { common });
  const ingestor = await createIngestor({ common, pool, adapter });
  await syncToHead(ingestor, pool, rpc, chain.chainId);
  const seconds = Math.max(1, Math.round(chain.blockTimeMs / 1000));
  await rpc("evm_setAutomine", [false]);
  await rpc("evm_setIntervalMining", [seconds]);
  const start = (await loadTip(pool, chain.chainId))!.number;
  let tip0: bigint | null = null;
  let calls0 = 0;
  ingestor.start();
  try {
    let sent = 0;
    const deadline = Date.now() + (blocks + 10) * chain.blockTimeMs * 3;
    for (;;) {
      const tip = (await loadTip(pool, chain.chainId))!.number;
      if (tip0 === null && tip > start) {
        tip0 = tip;
        calls0 = adapter.rpc.callCount();
      }
      if (tip0 !== null && tip - tip0 >= BigInt(blocks)) break;
      if (Date.now() > deadline) throw new Error(`realtime: only ${tip - start} blocks stored`);
      // One token transfer per block: keep one pending transaction in the pool.
      const pending = await rpc<Hex[]>("eth_pendingTransactions").catch(() => [] as Hex[]);
      if (pending.length === 0) {
        await rpc("eth_sendTransaction", [
          {
            from,
            to: token,
            data: call("TestToken", "transfer", [to, BigInt(++sent)]),
            gas: "0x30000",
          },
        ]);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // Calls up to the moment the last counted block was stored.
    const calls = adapter.rpc.callCount() - calls0;
    const stored = Number((await loadTip(pool, chain.chainId))!.number - tip0!);
    return { callsPerBlock: calls / stored, blocks: stored, wsHeads: ingestor.status().wsHeads };
  } finally {
    await ingestor.stop();
    await rpc("evm_setIntervalMining", [0]);
    await rpc("evm_setAutomine", [true]);
  }
}
