/**
 * For the tests of a withdrawal reorged while one endpoint is stuck on the losing fork (its
 * consensus client gone: its head stopped, it keeps answering the orphaned blocks, our transaction's
 * among them). On a `LyingSignerTest` whose proxy plays the stuck node: the withdrawal sent and
 * confirmed, the proxy frozen at the chain's view of then, the same bytes re-included one block
 * later by a reorg, and the indexer's checkpoint at the head. Test-only.
 */
import type { Hex, TransactionReceipt } from "viem";
import { expect } from "vitest";
import type { TxOutcome } from "../outcomes.js";
import type { WithdrawalFields } from "./harness.js";
import { waitFor } from "./harness.js";
import type { LyingSignerTest } from "./signerTest.js";

const hex = (n: bigint) => `0x${n.toString(16)}`;

/**
 * Requests the withdrawal `id`, starts the signer (`t.signer`, left running) and waits until the
 * withdrawal is mined and, a block later, confirmed. Returns its outcome when mined.
 */
export async function confirmedWithdrawal(
  t: LyingSignerTest,
  id: string,
  fields: WithdrawalFields,
): Promise<TxOutcome> {
  await t.withdraw(id, fields);
  t.signer = t.run();
  const first = await waitFor("mined", async () => {
    const o = await t.outcome(id);
    return o.blockNumber !== null ? o : undefined;
  });
  await t.rpc("anvil_mine", ["0x1"]);
  await waitFor("confirmed", async () => (await t.outcome(id)).status === "confirmed");
  return first;
}

/**
 * Freezes the proxy (`t.proxy`) at the chain's view of now: its head, the blocks from the
 * withdrawal's (`first`) up, the withdrawal's receipt there, and with `nonceCount` the hot
 * wallet's transaction count. Returns the stuck node's head.
 */
export async function stuckOnFork(
  t: LyingSignerTest,
  first: TxOutcome,
  { nonceCount = false }: { nonceCount?: boolean } = {},
): Promise<bigint> {
  const stuck = t.proxy!;
  const stuckHead = await t.client.getBlockNumber();
  const oldBlocks = new Map<bigint, unknown>();
  for (let n = first.blockNumber!; n <= stuckHead; n++)
    oldBlocks.set(n, await t.rpc("eth_getBlockByNumber", [hex(n), false]));
  const oldReceipt = await t.rpc("eth_getTransactionReceipt", [first.txHash]);
  const oldCount = nonceCount
    ? await t.rpc("eth_getTransactionCount", [t.account.address, "latest"])
    : undefined;
  stuck.setMethodLie("eth_blockNumber", () => ({ result: hex(stuckHead) }));
  stuck.setMethodLie("eth_getBlockByNumber", (real, params) => {
    const tag = params[0];
    if (tag === "latest" || tag === "pending") return { result: oldBlocks.get(stuckHead) };
    if (typeof tag === "string" && tag.startsWith("0x")) {
      const n = BigInt(tag);
      if (oldBlocks.has(n)) return { result: oldBlocks.get(n) };
      if (n > stuckHead) return { result: null };
    }
    return real.error ? { error: real.error } : { result: real.result };
  });
  if (nonceCount)
    stuck.setMethodLie("eth_getTransactionCount", (real, params) =>
      String(params[0]).toLowerCase() === t.account.address.toLowerCase()
        ? { result: oldCount }
        : real.error
          ? { error: real.error }
          : { result: real.result },
    );
  stuck.setMethodLie("eth_getTransactionReceipt", (real, params) =>
    params[0] === first.txHash
      ? { result: oldReceipt }
      : real.error
        ? { error: real.error }
        : { result: real.result },
  );
  return stuckHead;
}

/**
 * The chain reorgs from the withdrawal's block (`first`) to the stuck head: the same signed bytes
 * (request `id`'s one attempt) mine one block later (the nonce stays used), and it moves on three
 * blocks. Returns the withdrawal's receipt on the new branch.
 */
export async function reincludedOneBlockLater(
  t: LyingSignerTest,
  id: string,
  first: TxOutcome,
  stuckHead: bigint,
): Promise<TransactionReceipt> {
  const [attempt] = (
    await t.ctx.db.pool.query<{ raw_tx: Hex }>(
      "SELECT raw_tx FROM custody.tx_attempts WHERE request_id = $1",
      [id],
    )
  ).rows;
  const depth = Number(stuckHead - first.blockNumber! + 1n);
  await t.rpc("anvil_reorg", [depth, [[attempt!.raw_tx, 1]]]);
  await t.rpc("anvil_mine", ["0x3"]);
  const again = await t.client.getTransactionReceipt({ hash: first.txHash as Hex });
  expect(again.blockNumber).toBe(first.blockNumber! + 1n);
  return again;
}

/** The indexer's checkpoint at the chain's head (an indexer past the stuck node). */
export async function indexedAtHead(t: LyingSignerTest): Promise<void> {
  const tip = await t.client.getBlock();
  await t.ctx.db.pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = $2, block_hash = $3`,
    [t.chain.chainId, tip.number.toString(), tip.hash],
  );
}
