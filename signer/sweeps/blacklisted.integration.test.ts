/**
 * A listed token that blacklists a deposit address (USDC/USDT do): every sweep of it is mined and
 * moves nothing (the forwarder's transfer is refused, the factory sees no balance change, so no
 * Swept event). The customer's credit is real liability the custody can never move, a loss to
 * take up with the issuer. It was backed off for one fixed window and swept again for ever,
 * paying gas each time, told only by a warn line naming no address: no metric, no alert. Now each
 * (address, asset) that moved nothing is counted (custody_sweep_moved_nothing_total, alert
 * SweepMovedNothing) and logged by name, and its back-off doubles with every sweep in a row that
 * moved nothing, up to a cap. On the real stack (anvil, Postgres, Redis, KMS emulator).
 */

import { type Abi, type Address, encodeFunctionData, getContractAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { createSweeper, type Sweeper } from "./createSweeper.js";
import { deployTestContract } from "./testing/feeToken.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack } from "./testing/stack.js";

/** anvil dev account 6 deploys the token at nonce 0 on this file's own anvil. */
const BLACK_DEPLOYER: Address = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";
const BLACK_TOKEN: Address = getContractAddress({ from: BLACK_DEPLOYER, nonce: 0n });

const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract BlacklistToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => bool) public isBlacklisted;
    event Transfer(address indexed from, address indexed to, uint256 value);
    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }
    function blacklist(address account, bool on) external { isBlacklisted[account] = on; }
    function transfer(address to, uint256 value) external returns (bool) {
        require(!isBlacklisted[msg.sender], "blacklisted");
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}`;

let s: SweepStack;
let abi: Abi;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000000000000000000000",
    tokens: [{ address: BLACK_TOKEN, symbol: "BLK", decimals: 18, sweepThreshold: "1" }],
  });
  abi = await deployTestContract(s.rpc, {
    contract: "BlacklistToken",
    source: SOURCE,
    deployer: BLACK_DEPLOYER,
    expected: BLACK_TOKEN,
  });
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

const call = (functionName: string, args: unknown[]) =>
  sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: BLACK_TOKEN,
    data: encodeFunctionData({ abi, functionName, args }),
  });

/** A sweeper whose nothing-moved back-off starts at `baseMs` and stops growing at `maxMs`. */
function sweeperWith(baseMs: number, maxMs: number): Sweeper {
  const adapter = createEvmAdapter(s.ctx.config.chains[0]!, { common: s.ctx.common });
  return createSweeper({
    common: s.ctx.common,
    pool: s.ctx.db.pool,
    ledger: s.ledger,
    chains: s.ctx.config.chains,
    hotWallets: s.hotWallets,
    adapterFor: () => adapter,
    emptyRetryAfterMs: baseMs,
    emptyRetryMaxMs: maxMs,
  });
}

/** As if the pair's sweeps had settled `seconds` ago (the back-off is measured from that). */
async function settledAgo(address: Address, seconds: number) {
  await s.ctx.db.pool.query(
    `UPDATE custody.sweeps SET settled_at = now() - make_interval(secs => $2)
     WHERE id IN (SELECT sweep_id FROM custody.sweep_items WHERE address = $1)`,
    [address.toLowerCase(), seconds],
  );
}

async function movedNothing(): Promise<number> {
  const metric = s.ctx.common.metrics.registry.getSingleMetric("custody_sweep_moved_nothing_total");
  if (!metric) return Number.NaN;
  const { values } = await metric.get();
  return (
    values.find(
      (v) => v.labels.chain_id === String(CHAIN_ID) && v.labels.asset === BLACK_TOKEN.toLowerCase(),
    )?.value ?? 0
  );
}

/** Sweep once with `sweeper` and settle it: the sweep's item for `address` as booked. */
async function sweepOnce(sweeper: Sweeper, address: Address) {
  const tick = await sweeper.tick(CHAIN_ID);
  expect(tick.started).toHaveLength(1);
  const id = tick.started[0]!.id;
  expect(await s.settleOne(sweeper, id)).toBe("booked");
  const { rows } = await s.ctx.db.pool.query<{ planned: bigint; swept: bigint }>(
    "SELECT planned, swept FROM custody.sweep_items WHERE sweep_id = $1 AND address = $2",
    [id, address.toLowerCase()],
  );
  return rows[0];
}

describe("a deposit address the token blacklisted", () => {
  it("is counted each time it moves nothing, and backed off longer each time, up to a cap", async () => {
    const address = await s.allocate("blacklisted");
    await call("mint", [address, 5_000_000n]);
    await s.mine(2);
    await s.syncAndCredit();
    await call("blacklist", [address, true]);
    // Named at 0 when the sweeper is built: the first increase is one Prometheus can see.
    const sweeper = sweeperWith(60_000, 150_000);
    expect(await movedNothing()).toBe(0);

    expect(await sweepOnce(sweeper, address)).toEqual({ planned: 5_000_000n, swept: 0n });
    expect(await movedNothing()).toBe(1);

    // One sweep in a row moved nothing: backed off for the base window (60 s), no longer.
    await settledAgo(address, 30);
    expect((await sweeper.tick(CHAIN_ID)).started).toEqual([]);
    await settledAgo(address, 61);
    expect(await sweepOnce(sweeper, address)).toEqual({ planned: 5_000_000n, swept: 0n });
    expect(await movedNothing()).toBe(2);

    // Two in a row: twice the window. Swept again after 61 s, gas was burnt every window.
    await settledAgo(address, 90);
    expect((await sweeper.tick(CHAIN_ID)).started).toEqual([]);
    await settledAgo(address, 121);
    expect(await sweepOnce(sweeper, address)).toEqual({ planned: 5_000_000n, swept: 0n });
    expect(await movedNothing()).toBe(3);

    // Three in a row would be 240 s; the cap (150 s) bounds it, so the address is still tried.
    await settledAgo(address, 140);
    expect((await sweeper.tick(CHAIN_ID)).started).toEqual([]);
    await settledAgo(address, 151);
    // The issuer lifted the blacklist meanwhile: the sweep moves it all and the streak ends.
    await call("blacklist", [address, false]);
    expect(await sweepOnce(sweeper, address)).toEqual({
      planned: 5_000_000n,
      swept: 5_000_000n,
    });
    expect(await movedNothing()).toBe(3);
  });

  it("is counted once for a sweep reorged out and booked again", async () => {
    // old code: "expected 5 to be 4" — booked again after the reorg, the sweep's nothing-moved
    // pair was counted a second time (the unbooking resets the items, settlement counted anew).
    const address = await s.allocate("blacklisted-reorged");
    await call("mint", [address, 7_000_000n]);
    await s.mine(2);
    await s.syncAndCredit();
    await call("blacklist", [address, true]);
    const sweeper = sweeperWith(60_000, 150_000);
    const counted = await movedNothing();
    const item = async (id: string) =>
      (
        await s.ctx.db.pool.query<{ swept: bigint | null; status: string; g: number }>(
          `SELECT i.swept, w.status, w.booked_generation AS g FROM custody.sweep_items i
             JOIN custody.sweeps w ON w.id = i.sweep_id WHERE i.sweep_id = $1 AND i.address = $2`,
          [id, address.toLowerCase()],
        )
      ).rows[0]!;
    const tick = await sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    const id = tick.started[0]!.id;
    expect(await s.settleOne(sweeper, id)).toBe("booked");
    expect(await item(id)).toMatchObject({ swept: 0n, g: 0 });
    expect(await movedNothing()).toBe(counted + 1);

    // The sweep's block (and those on top) taken out: the booking is reversed, the signer re-sends
    // the same bytes, and the sweep is booked again in the new generation, moving nothing again.
    const [outcome] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [id] });
    const depth = Number((await s.h.client.getBlockNumber()) - outcome!.blockNumber!) + 1;
    await s.rpc("anvil_reorg", [depth, []]);
    await waitFor(
      "booked again",
      async () => {
        await sweeper.settle(CHAIN_ID);
        const now = await item(id);
        if (now.status === "booked" && now.g >= 1) return true;
        await s.mine(1);
        return false;
      },
      { timeoutMs: 90_000, everyMs: 200 },
    );
    expect(await item(id)).toMatchObject({ swept: 0n, status: "booked" });
    expect(await movedNothing()).toBe(counted + 1);
    // One sweep that moved nothing, not two in a row: backed off for the base window only.
    await settledAgo(address, 61);
    expect((await sweeper.tick(CHAIN_ID)).started).toHaveLength(1);
  });
});
