/**
 * An endpoint of another network with our chain id (a misconfigured URL: a devnet or fork of the
 * chain, a provider serving another network under the same id) that answers a higher head. The
 * signer's snapshot is read from a node at the best head seen: before, that was always the other
 * network's node, and the wallet's mined count and the head that decide nonces, stalls, bumps and
 * cancels were that network's. Now the snapshot's batch also asks the block at the indexer's
 * stored final height: a node showing another block there is set aside (its head not counted,
 * `custody_rpc_endpoint_other_chain_total`), and the snapshot comes from our node.
 * Two real anvils with the same chain id and different genesis blocks, Postgres, the KMS emulator.
 */
import { type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endpointLabel } from "../chains/rpc.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { createBroadcasterContext } from "./broadcaster/index.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest;
let other: Anvil;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
  });
  // Same chain id, another genesis (its timestamp): every block of it is another block than ours.
  other = await startAnvil({ chainId: TEST_CHAIN_ID, args: ["--timestamp", "1000000"] });
});

afterAll(async () => {
  await other?.stop();
  await t?.stop();
});

async function rpcAt<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = (await res.json()) as { result: T };
  return body.result;
}

async function counted(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await t.ctx.common.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + v.value, 0);
}

/** The indexer's published final block: our node's block at `n` (as the ingestor stores it). */
async function publishFinal(n: bigint): Promise<void> {
  const block = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [toHex(n), false]);
  await t.ctx.db.pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
     VALUES ($1, $2, $3, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = $2, block_hash = $3, finalized_number = $2, finalized_hash = $3`,
    [TEST_CHAIN_ID, n.toString(), block.hash.toLowerCase()],
  );
}

describe("an endpoint of another network with our chain id, at a higher head", () => {
  it("is not where the snapshot's count and head come from: it is set aside, counted, and our node answers", async () => {
    const ours = t.ctx.config.chains[0]!.rpcUrls[0]!;
    const account = await t.wallet();
    // Our chain: the wallet has used nonces 0..6 and the chain is at 20; the other network has
    // never seen the wallet and is 40 blocks further on.
    await t.rpc("anvil_setNonce", [account.address, toHex(7)]);
    await t.rpc("anvil_mine", [toHex(20)]);
    await rpcAt(other.rpcUrl, "anvil_mine", [toHex(60)]);
    const ourHead = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    const otherHead = BigInt(await rpcAt<Hex>(other.rpcUrl, "eth_blockNumber"));
    expect(otherHead).toBeGreaterThan(ourHead);
    await publishFinal(ourHead - 5n);

    // Ours first: the other endpoint is asked only because it is at the best head seen.
    const ctx = createBroadcasterContext({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      queues: t.ctx.queues,
      chain: { ...t.ctx.config.chains[0]!, rpcUrls: [ours, other.rpcUrl] },
      account,
    });
    // Both heads known, as after a few ticks (the other's is the best seen): a read at its head
    // asks each endpoint's head (a receipt search for a hash no chain has).
    await ctx.chainView.receipts([`0x${"ab".repeat(32)}`], otherHead);
    const snap = await ctx.chainView.snapshot();
    expect(snap.latestCount).toBe(7n);
    expect(snap.head).toBe(ourHead);
    expect(snap.atBestHead).toBe(true);
    expect(
      await counted("custody_rpc_endpoint_other_chain_total", {
        chain_id: String(TEST_CHAIN_ID),
        endpoint: endpointLabel(other.rpcUrl),
      }),
    ).toBe(1);

    // The next ticks: still our node, the other one not asked again meanwhile.
    await t.rpc("evm_mine");
    const next = await ctx.chainView.snapshot();
    expect(next.latestCount).toBe(7n);
    expect(next.head).toBe(ourHead + 1n);
    expect(next.atBestHead).toBe(true);
    expect(await counted("custody_rpc_endpoint_other_chain_total")).toBe(1);
  });

  it("a node of ours that reorged above our final block is not another network: the snapshot comes from it", async () => {
    const ours = t.ctx.config.chains[0]!.rpcUrls[0]!;
    const account = await t.wallet();
    await t.rpc("anvil_setNonce", [account.address, toHex(3)]);
    await t.rpc("anvil_mine", [toHex(10)]);
    const base = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    await publishFinal(base - 2n);
    const ctx = createBroadcasterContext({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      queues: t.ctx.queues,
      chain: { ...t.ctx.config.chains[0]!, rpcUrls: [ours] },
      account,
    });
    const before = await counted("custody_rpc_endpoint_other_chain_total");
    const id = await t.rpc<Hex>("evm_snapshot");
    await t.rpc("anvil_mine", [toHex(3)]);
    const first = await ctx.chainView.snapshot();
    const replaced = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [toHex(base + 1n), false]);
    // The blocks above `base` replaced by others (later timestamps), one more of them: a reorg
    // above the final block.
    await t.rpc("evm_revert", [id]);
    await t.rpc("anvil_mine", [toHex(4), toHex(1_000)]);
    const after = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [toHex(base + 1n), false]);
    expect(after.hash).not.toBe(replaced.hash);
    const snap = await ctx.chainView.snapshot();
    expect(first.head).toBe(base + 3n);
    expect(snap.head).toBe(base + 4n);
    expect(snap.latestCount).toBe(3n);
    expect(snap.atBestHead).toBe(true);
    expect(await counted("custody_rpc_endpoint_other_chain_total")).toBe(before);
  });

  it("resync's next nonce is not raised by the other network's count", async () => {
    const ours = t.ctx.config.chains[0]!.rpcUrls[0]!;
    const account = await t.wallet();
    // The wallet has used nonces 0..3 on our chain; on the other network its count is 50: taken,
    // the signer would sign at 50 and nothing would ever fill 4..49 on ours.
    await t.rpc("anvil_setNonce", [account.address, toHex(4)]);
    await rpcAt(other.rpcUrl, "anvil_setNonce", [account.address, toHex(50)]);
    await t.rpc("anvil_mine", [toHex(3)]);
    const ourHead = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    await publishFinal(ourHead - 1n);
    const before = await counted("custody_rpc_endpoint_other_chain_total");
    const ctx = createBroadcasterContext({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      queues: t.ctx.queues,
      chain: { ...t.ctx.config.chains[0]!, rpcUrls: [other.rpcUrl, ours] },
      account,
    });
    expect(await ctx.chainView.highestPendingCount(ourHead)).toBe(4n);
    // The fallback client's pending count was asked of the other network first, and the
    // per-endpoint client's mined count of it too: each sets it aside, counted (not silent).
    expect(await counted("custody_rpc_endpoint_other_chain_total")).toBe(before + 2);
  });
});
