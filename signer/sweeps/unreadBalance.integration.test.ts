/**
 * A listed token whose balance the node cannot answer at the head (no code there: a token not
 * deployed on this chain yet, a wrong address, a node without its state; or a contract without
 * balanceOf) is skipped by the sweep pass, never read as 0: every other asset is still swept and
 * moved to cold, the skip is logged and counted (custody_sweep_balance_unread_total), and the
 * token is swept as soon as it reads again. Before, its read threw and the chain's whole pass
 * stopped on every tick: nothing swept for any asset. Real anvil, Postgres, KMS emulator, indexer
 * and crediting.
 */
import { type Address, encodeDeployData, getContractAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testToken } from "../../chains/contracts/index.js";
import { createEvmAdapter } from "../../chains/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { startSweeps } from "./startSweeps.js";
import {
  CHAIN_ID,
  DEPOSITOR,
  type SweepStack,
  startSweepStack,
  TOKEN,
  TOKEN_DEPLOYER,
} from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
/** Listed, never deployed on this chain. */
const NO_CODE: Address = "0x00000000000000000000000000000000000DEaD1";
/** Listed, a contract without balanceOf (its code reverts every call). */
const NOT_A_TOKEN: Address = "0x00000000000000000000000000000000000dead2";
/** A second test token (the deployer's nonce 1), whose code a node may lack. */
const TOKEN2: Address = getContractAddress({ from: TOKEN_DEPLOYER, nonce: 1n });

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000",
    coldAddress: COLD,
    tokens: [
      { address: TOKEN, symbol: "TT", decimals: 18, sweepThreshold: "1" },
      { address: TOKEN2, symbol: "TT2", decimals: 18, sweepThreshold: "1" },
      { address: NO_CODE, symbol: "NC", decimals: 18, sweepThreshold: "1", hotCeiling: "1000" },
      { address: NOT_A_TOKEN, symbol: "NT", decimals: 18, sweepThreshold: "1", hotCeiling: "1" },
    ],
  });
  await s.deployToken();
  await sendAndMine(s.rpc, {
    from: TOKEN_DEPLOYER.toLowerCase() as Hex,
    data: encodeDeployData({ abi: testToken.abi, bytecode: testToken.bytecode }),
  });
  // PUSH1 0 PUSH1 0 REVERT
  await s.rpc("anvil_setCode", [NOT_A_TOKEN, "0x60006000fd"]);
  s.startSigner();
}, 120_000);

afterAll(async () => {
  await s?.close();
});

function mintData(to: Address, amount: bigint): Hex {
  return `0x40c10f19${to.slice(2).toLowerCase().padStart(64, "0")}${amount.toString(16).padStart(64, "0")}`;
}

async function mint(token: Address, to: Address, amount: bigint) {
  await sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: token,
    data: mintData(to, amount),
  });
}

async function sweptItems(address: Address) {
  const { rows } = await s.ctx.db.pool.query<{ asset: string; planned: bigint }>(
    "SELECT asset, planned FROM custody.sweep_items WHERE address = $1 ORDER BY sweep_id",
    [address.toLowerCase()],
  );
  return rows;
}

async function unread(asset: Address): Promise<number> {
  const metric = await s.ctx.common.metrics.registry
    .getSingleMetric("custody_sweep_balance_unread_total")
    ?.get();
  return (metric?.values ?? [])
    .filter((v) => v.labels.chain_id === String(CHAIN_ID) && v.labels.asset === asset.toLowerCase())
    .reduce((n, v) => n + v.value, 0);
}

describe("a listed token whose balance cannot be read", () => {
  it("does not stop the tick: the other token is swept, the unreadable ones counted and left alone", async () => {
    const address = await s.allocate("reads-ok");
    await mint(TOKEN, address, 5000n);
    await s.mine(2);
    await s.syncAndCredit();

    const r = await s.sweeper.tick(CHAIN_ID);
    expect(r.coldStarted).toEqual([]);
    expect(r.started).toHaveLength(1);
    expect(await sweptItems(address)).toEqual([{ asset: TOKEN.toLowerCase(), planned: 5000n }]);
    expect(await unread(NO_CODE)).toBeGreaterThan(0);
    expect(await unread(NOT_A_TOKEN)).toBeGreaterThan(0);
    await s.settleAll();
    const { rows } = await s.ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM custody.cold_moves",
    );
    expect(rows[0]!.n).toBe(0);
  }, 120_000);

  it("a credited token the node lacks code for at the head is skipped, not read as 0, and swept once it reads again", async () => {
    const lacking = await s.allocate("token-lacking");
    const other = await s.allocate("token-readable");
    await mint(TOKEN2, lacking, 700n);
    await mint(TOKEN, other, 900n);
    await s.mine(2);
    await s.syncAndCredit();

    const code = await s.rpc<Hex>("eth_getCode", [TOKEN2, "latest"]);
    await s.rpc("anvil_setCode", [TOKEN2, "0x"]);
    const deps = {
      common: s.ctx.common,
      pool: s.ctx.db.pool,
      chain: s.ctx.config.chains[0]!,
      adapter: createEvmAdapter(s.ctx.config.chains[0]!, { common: s.ctx.common }),
    };
    const before = await unread(TOKEN2);
    let started: Awaited<ReturnType<typeof startSweeps>>;
    try {
      started = await startSweeps(deps);
    } finally {
      await s.rpc("anvil_setCode", [TOKEN2, code]);
    }
    expect(started).toHaveLength(1);
    expect(await sweptItems(other)).toEqual([{ asset: TOKEN.toLowerCase(), planned: 900n }]);
    expect(await sweptItems(lacking)).toEqual([]);
    expect(await unread(TOKEN2)).toBe(before + 1);

    // Readable again: nothing was recorded against it (no empty sweep, no back-off).
    const again = await startSweeps(deps);
    expect(again).toHaveLength(1);
    expect(await sweptItems(lacking)).toEqual([{ asset: TOKEN2.toLowerCase(), planned: 700n }]);
    await s.settleAll();
  }, 120_000);
});
