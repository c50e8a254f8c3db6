/**
 * A deep reorg an operator accepted at the chain's resume, as the signer's tests need it: anvil
 * replaces the blocks down to `block` (with `txs`, raw bytes, in the first new one), and the reorg
 * is recorded in chain.reorg_log as `chains resume --accept-reorg` records it. Test-only.
 */
import type { Hex } from "viem";
import { withTransaction } from "../../foundation/db.js";
import { recordReorg } from "../../indexers/store.js";
import type { SignerTest } from "./signerTest.js";

export async function deepReorg(t: SignerTest, block: bigint, txs: Hex[]): Promise<void> {
  const head = await t.client.getBlockNumber();
  const oldTip = await t.client.getBlock({ blockNumber: head });
  const depth = Number(head - block + 1n);
  await t.rpc("anvil_reorg", [depth, txs.map((raw) => [raw, 0])]);
  const newTip = await t.client.getBlock({ blockNumber: head });
  await withTransaction(t.ctx.db.pool, (c) =>
    recordReorg(c, {
      chainId: t.chain.chainId,
      depth,
      ancestor: block - 1n,
      oldTip: { number: head, hash: oldTip.hash },
      newTip: { number: head, hash: newTip.hash },
      beyondWindow: true,
      orphanedConfirmedFacts: 0,
    }),
  );
}
