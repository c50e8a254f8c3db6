/**
 * Test helpers for driving a local anvil (unlocked dev accounts, raw JSON-RPC) and for comparing
 * what an ingestor stored with a fresh index of the same chain. Test-only.
 */
import { readFileSync } from "node:fs";
import { type Abi, encodeDeployData, encodeFunctionData, type Hex } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import { createEvmAdapter } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import {
  createTestDatabase,
  type DroppedTogether,
  type TestDatabase,
} from "../../ops/testing/database.js";
import { createIngestor, type IngestorOptions } from "../createIngestor.js";
import { loadTip } from "../store.js";
import { notifyWatchedAddress } from "../watched.js";

type Artifact = { abi: Abi; bytecode: Hex };
export const artifacts = JSON.parse(
  readFileSync(new URL("contracts.compiled.json", import.meta.url), "utf8"),
) as { TestToken: Artifact; Forwarder: Artifact };

export type Rpc = <T = unknown>(method: string, params?: unknown[]) => Promise<T>;

export function anvilRpc(url: string): Rpc {
  let id = 0;
  return async <T>(method: string, params: unknown[] = []) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
    });
    const json = (await response.json()) as { result?: T; error?: { message: string } };
    if (json.error) throw new Error(`${method}: ${json.error.message}`);
    return json.result as T;
  };
}

export type Receipt = {
  transactionHash: Hex;
  blockNumber: Hex;
  blockHash: Hex;
  status: Hex;
  contractAddress: Hex | null;
  gasUsed: Hex;
  effectiveGasPrice: Hex;
};

export type TxRequest = { from: Hex; to?: Hex; value?: bigint; data?: Hex; gas?: bigint };

function txParams(tx: TxRequest) {
  return {
    from: tx.from,
    ...(tx.to ? { to: tx.to } : {}),
    ...(tx.value !== undefined ? { value: `0x${tx.value.toString(16)}` } : {}),
    ...(tx.data ? { data: tx.data } : {}),
    ...(tx.gas !== undefined ? { gas: `0x${tx.gas.toString(16)}` } : {}),
  };
}

/** Send from an unlocked dev account; returns the tx hash (mined only with automine on). */
export async function sendTx(rpc: Rpc, tx: TxRequest): Promise<Hex> {
  return rpc<Hex>("eth_sendTransaction", [txParams(tx)]);
}

export async function receipt(rpc: Rpc, hash: Hex): Promise<Receipt> {
  for (let i = 0; i < 100; i++) {
    const r = await rpc<Receipt | null>("eth_getTransactionReceipt", [hash]);
    if (r) return r;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`no receipt for ${hash}`);
}

export async function sendAndMine(rpc: Rpc, tx: TxRequest): Promise<Receipt> {
  return receipt(rpc, await sendTx(rpc, tx));
}

export async function deploy(
  rpc: Rpc,
  from: Hex,
  name: keyof typeof artifacts,
  args: unknown[] = [],
): Promise<Hex> {
  const { abi, bytecode } = artifacts[name];
  const data = encodeDeployData({ abi, bytecode, args } as Parameters<typeof encodeDeployData>[0]);
  const r = await sendAndMine(rpc, { from, data, gas: 3_000_000n });
  if (r.status !== "0x1" || !r.contractAddress) throw new Error(`deploy ${name} failed`);
  return r.contractAddress;
}

/** anvil's first dev account (unlocked, funded): deploys the test contracts. */
export const DEV_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266" as Hex;

/** A fresh TestToken (its supply of 10^24 is DEV_ACCOUNT's), `amount` of it sent to `holder`. */
export async function deployTestToken(rpc: Rpc, holder: Hex, amount: bigint): Promise<Hex> {
  const token = await deploy(rpc, DEV_ACCOUNT, "TestToken", [10n ** 24n]);
  if (amount > 0n)
    await sendAndMine(rpc, {
      from: DEV_ACCOUNT,
      to: token,
      data: call("TestToken", "transfer", [holder, amount]),
    });
  return token;
}

export function call(name: keyof typeof artifacts, functionName: string, args: unknown[]): Hex {
  return encodeFunctionData({ abi: artifacts[name].abi, functionName, args } as Parameters<
    typeof encodeFunctionData
  >[0]);
}

/** A fresh, never-used address (lowercase) to act as a deposit address. */
export function freshAddress(seed: number): Hex {
  return `0x${(0xdead0000n + BigInt(seed)).toString(16).padStart(40, "0")}`;
}

export async function watch(
  pool: Pool,
  chainId: number,
  addresses: { address: string; kind?: "deposit" | "hot" | "cold"; owner?: string }[],
): Promise<void> {
  // As allocation does, the running indexers are told which addresses (tests that pass a client
  // inside their own transaction get both in it).
  const { rows } = await pool.query<{ address: string }>(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     SELECT $1, a, k, o FROM unnest($2::text[], $3::text[], $4::text[]) AS x(a, k, o)
     ON CONFLICT DO NOTHING
     RETURNING address`,
    [
      chainId,
      addresses.map((a) => a.address.toLowerCase()),
      addresses.map((a) => a.kind ?? "deposit"),
      addresses.map((a) => a.owner ?? "test"),
    ],
  );
  if (rows.length > 0)
    await notifyWatchedAddress(
      pool,
      chainId,
      rows.map((r) => r.address),
    );
}

export type StoredFact = {
  block_number: string;
  block_hash: string;
  tx_hash: string;
  position: string;
  kind: string;
  asset: string;
  from_address: string;
  to_address: string;
  amount: bigint;
  status: string;
};

/** Canonical facts (not orphaned), in a stable order, for comparing two indexes. */
export async function canonicalFacts(pool: Pool, chainId: number): Promise<StoredFact[]> {
  const { rows } = await pool.query<StoredFact>(
    `SELECT block_number::text, block_hash, tx_hash, position, kind, asset, from_address,
            to_address, amount, status
       FROM chain.transfers WHERE chain_id = $1 AND status <> 'orphaned'
      ORDER BY block_number, tx_hash, position`,
    [chainId],
  );
  return rows;
}

export async function canonicalBlocks(pool: Pool, chainId: number): Promise<string[]> {
  const { rows } = await pool.query<{ b: string }>(
    `SELECT number || ':' || hash || ':' || parent_hash AS b FROM chain.blocks
      WHERE chain_id = $1 AND canonical ORDER BY number`,
    [chainId],
  );
  return rows.map((r) => r.b);
}

/**
 * Publish `block` as the chain's finalized block (and its checkpoint), as the ingestor does: for
 * tests of what reads `readFinalized` without running an indexer.
 */
export async function setPublishedFinalized(
  pool: Pool,
  chainId: number,
  block: { number: bigint; hash: string },
): Promise<void> {
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
     VALUES ($1, $2, $3, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET finalized_number = $2, finalized_hash = $3`,
    [chainId, block.number.toString(), block.hash.toLowerCase()],
  );
}

/** Sync until the stored tip is the node's head (and its hash). */
export async function syncToHead(
  ingestor: { syncOnce: () => Promise<void> },
  pool: Pool,
  rpc: Rpc,
  chainId: number,
): Promise<void> {
  for (let i = 0; i < 200; i++) {
    await ingestor.syncOnce();
    const head = await rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
    const tip = await loadTip(pool, chainId);
    if (tip && tip.number === BigInt(head.number) && tip.hash === head.hash.toLowerCase()) return;
  }
  throw new Error("ingestor did not reach the head");
}

/**
 * Index the node's current chain from scratch into a new database with the same watched set, and
 * return its canonical facts and blocks: the reference a reorged/killed index must equal. The
 * database is dropped at the end, or with `databases` (given) when they are.
 */
export async function freshIndex({
  common,
  chain,
  sourcePool,
  options,
  databases,
}: {
  common: Common;
  chain: ChainConfig;
  sourcePool: Pool;
  options?: IngestorOptions;
  databases?: DroppedTogether;
}): Promise<{ facts: StoredFact[]; blocks: string[] }> {
  const db: TestDatabase = await (databases?.create() ?? createTestDatabase());
  try {
    const { rows } = await sourcePool.query<{ address: string; kind: "deposit" | "hot" | "cold" }>(
      "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1",
      [chain.chainId],
    );
    await watch(db.pool, chain.chainId, rows);
    const adapter = createEvmAdapter(chain, { common });
    const ingestor = await createIngestor({
      common,
      pool: db.pool,
      adapter,
      ...(options ? { options } : {}),
    });
    await syncToHead(ingestor, db.pool, anvilRpc(chain.rpcUrls[0]!), chain.chainId);
    await ingestor.stop();
    return {
      facts: await canonicalFacts(db.pool, chain.chainId),
      blocks: await canonicalBlocks(db.pool, chain.chainId),
    };
  } finally {
    await (databases ? db.pool.end() : db.drop());
  }
}
