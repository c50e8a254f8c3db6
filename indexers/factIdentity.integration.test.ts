/**
 * Fact identity across re-inclusion (issue 12 item 4), on a real anvil: a batch payout (one tx,
 * three Transfer logs to three deposit addresses) is mined behind a filler token transfer, then a
 * reorg (evm_revert and a longer branch) re-includes the same signed tx without the filler, so its
 * logs sit one index lower. Both blocks' facts must carry the same (tx_hash, position) per
 * recipient, asset and amount; only log_index and the block differ. The ledger's crediting (real)
 * then leaves each of the three customers with exactly their amount: credited once, no hold left.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import { createDepositCrediting, createLedger, type Ledger } from "../ledger/index.js";
import type { Ingestor } from "./createIngestor.js";
import { call, freshAddress, receipt, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const R = [freshAddress(101), freshAddress(102), freshAddress(103)];
const AMOUNTS = [11n, 22n, 33n];
const GWEI = 1_000_000_000n;
const hex = (n: bigint) => `0x${n.toString(16)}`;

let t: IndexerTest;
let chain: ChainConfig;
let ingestor: Ingestor;
let payer: Hex;
let filler: Hex;
let token: Hex;
let ledger: Ledger;

/** Each customer's ledger balance of the token (available = posted credits - posted/held debits). */
async function balances(): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let i = 0; i < R.length; i++)
    out.push(
      (
        await ledger.balance({
          assetId: `${CHAIN_ID}:${token.toLowerCase()}`,
          name: `user:customer-${i}`,
        })
      ).available,
    );
  return out;
}

type Row = {
  block_hash: string;
  tx_hash: string;
  position: string;
  log_index: number | null;
  to_address: string;
  asset: string;
  amount: bigint;
  status: string;
};

async function factsOf(txHash: Hex): Promise<Row[]> {
  const { rows } = await t.ctx.db.pool.query<Row>(
    `SELECT block_hash, tx_hash, position, log_index, to_address, asset, amount, status
       FROM chain.transfers WHERE chain_id = $1 AND tx_hash = $2 ORDER BY block_number, log_index`,
    [CHAIN_ID, txHash.toLowerCase()],
  );
  return rows;
}

beforeAll(async () => {
  t = await startIndexerTest({
    token: true,
    config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 8, traces: false },
    watch: R.map((address, i) => ({ address, owner: `customer-${i}` })),
  });
  ({ chain } = t);
  [payer, filler] = t.accounts as [Hex, Hex];
  token = t.token!;
  await sendAndMine(t.rpc, {
    from: payer,
    to: token,
    data: call("TestToken", "transfer", [filler, 10n ** 20n]),
  });
  ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
});

afterAll(async () => {
  await t?.stop();
});

describe("fact identity", () => {
  it("a batch payout re-included one log index lower keeps (tx_hash, position) per recipient", async () => {
    const snapshot = await t.rpc<Hex>("evm_snapshot");
    await t.rpc("evm_setAutomine", [false]);

    // The payout is signed once; the same bytes are mined in both branches (same tx hash).
    const nonce = await t.rpc<Hex>("eth_getTransactionCount", [payer, "latest"]);
    const raw = await t.rpc<Hex>("eth_signTransaction", [
      {
        from: payer,
        to: token,
        data: call("TestToken", "batchTransfer", [R, AMOUNTS]),
        gas: hex(300_000n),
        nonce,
        maxFeePerGas: hex(100n * GWEI),
        maxPriorityFeePerGas: hex(1n * GWEI),
      },
    ]);
    // The filler pays a higher tip so it is ordered first: its Transfer log takes index 0.
    const fillerHash = await t.rpc<Hex>("eth_sendTransaction", [
      {
        from: filler,
        to: token,
        data: call("TestToken", "transfer", [freshAddress(999), 1n]),
        gas: hex(100_000n),
        maxFeePerGas: hex(100n * GWEI),
        maxPriorityFeePerGas: hex(50n * GWEI),
      },
    ]);
    const payout = await t.rpc<Hex>("eth_sendRawTransaction", [raw]);
    await t.rpc("evm_mine");
    await t.rpc("evm_mine");
    const fillerReceipt = await receipt(t.rpc, fillerHash);
    const first = await receipt(t.rpc, payout);
    expect(first.blockHash).toBe(fillerReceipt.blockHash);
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);

    const crediting = createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    expect((await crediting.sweep({ chainId: CHAIN_ID })).credited).toBe(3);
    expect(await balances()).toEqual(AMOUNTS);

    const before = await factsOf(payout);
    expect(before.map((f) => [f.position, f.log_index, f.to_address, f.amount])).toEqual([
      ["transfer:0", 1, R[0], 11n],
      ["transfer:1", 2, R[1], 22n],
      ["transfer:2", 3, R[2], 33n],
    ]);

    // Reorg: back to before the payout's block; a longer branch re-mines the payout alone.
    await t.rpc("evm_revert", [snapshot]);
    expect(await t.rpc<Hex>("eth_sendRawTransaction", [raw])).toBe(payout);
    await t.rpc("evm_mine");
    await t.rpc("evm_mine");
    await t.rpc("evm_mine");
    await t.rpc("evm_setAutomine", [true]);
    const second = await receipt(t.rpc, payout);
    expect(second.blockHash).not.toBe(first.blockHash);
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);

    const after = await factsOf(payout);
    const old = after.filter((f) => f.block_hash === first.blockHash.toLowerCase());
    const now = after.filter((f) => f.block_hash === second.blockHash.toLowerCase());
    expect(old.map((f) => f.status)).toEqual(["orphaned", "orphaned", "orphaned"]);
    expect(now.map((f) => f.status).every((s) => s !== "orphaned")).toBe(true);
    expect(now.map((f) => f.log_index)).toEqual([0, 1, 2]);
    const identity = (rows: Row[]) =>
      rows.map((f) => [f.tx_hash, f.position, f.to_address, f.asset, f.amount]);
    expect(identity(now)).toEqual(identity(old));
    expect(identity(now)).toHaveLength(3);
    expect(now.map((f) => f.status)).toEqual(["confirmed", "confirmed", "confirmed"]);

    // The re-included deposits are the same deposits: nobody is credited twice or left held.
    await crediting.sweep({ chainId: CHAIN_ID });
    expect(await balances()).toEqual(AMOUNTS);
    const { rows } = await t.ctx.db.pool.query(
      `SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'deposit'`,
    );
    expect(rows[0].n).toBe(3);
  });
});
