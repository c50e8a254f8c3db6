/**
 * A native sweep on a chain without traces (no fact shows the value leaving the deposit address)
 * that a reorg takes out after a run read the swept address: the address holds its deposit again
 * on the new branch, and once the booking is reversed (signer/sweeps/followSweeps.ts) the ledger
 * says so too. No fact of the undone blocks names the address, and the reversal leaves no settled
 * sweep behind, so only the reorg says its balance must be read again: a run counting it at the
 * balance read on the old branch (recon.onchain_balances) showed a difference in the deposits
 * until the slow rotation reached the address.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshAddress } from "../../indexers/testing/chain.js";
import { sweepUnbooking } from "../../signer/sweeps/bookings.js";
import { gasUnbooking } from "../gasBookings.js";
import type { RunSummary } from "./reconcile.js";
import {
  bookNativeSweep,
  depositAndCredit,
  noRotationRole,
  sweepByBalances,
} from "./testing/nativeSweep.js";
import { mine, startWatchedChain, sync, type WatchedChain } from "./testing/watchedChain.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const E18 = 10n ** 18n;
const D = freshAddress(242);
const ELSEWHERE = freshAddress(243);

let w: WatchedChain;

const kinds = (s: RunSummary) => s.breaks.map((b) => `${b.type} ${b.key}`);

beforeAll(async () => {
  w = await startWatchedChain({
    config: { traces: false, confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 16 },
    deposits: [{ address: D, owner: "alice" }],
  });
});

afterAll(async () => {
  await w?.stop();
});

describe("a native sweep reorged out after a run read the swept address", () => {
  it("has its address read again by the next run: no break", async () => {
    // old code: expected [ 'balance custody:deposits…' ] to deeply equal [] (see the run below).
    const { ctx, rpc, chain, stack, hot } = w;
    const role = noRotationRole(w);
    await depositAndCredit(w, D, E18);
    expect(kinds(await role.run({ chain }))).toEqual([]);

    // The sweep, as the chain shows it without traces.
    const beforeSweep = await rpc<Hex>("evm_snapshot");
    const r = await sweepByBalances(w, { address: D, amount: E18, to: ELSEWHERE });
    expect(r.status).toBe("0x1");
    await mine(w, 3);
    await sync(w);
    // Booked as the signer books a confirmed sweep.
    const { txHash, fee } = await bookNativeSweep(w, {
      sweepId: "s-reorged",
      address: D,
      amount: E18,
      receipt: r,
      salt: `0x${"3".padStart(64, "0")}`,
    });
    const sweep = { chainId: CHAIN_ID, sweepId: "s-reorged", hotWallet: hot };
    // The run reads D on this branch: nothing left.
    const swept = await role.run({ chain });
    expect(kinds(swept)).toEqual([]);
    const read = await ctx.db.pool.query<{ balance: bigint }>(
      "SELECT balance FROM recon.onchain_balances WHERE chain_id = $1 AND address = $2",
      [CHAIN_ID, D],
    );
    expect(read.rows.map((x) => BigInt(x.balance))).toEqual([0n]);

    // A longer branch without the sweep: the indexer records the reorg and orphans the old
    // blocks' facts; the signer reverses the booking (as followSweeps does) and the sweep is open.
    await rpc("evm_revert", [beforeSweep]);
    await mine(w, 8);
    await sync(w);
    expect(BigInt(await rpc<Hex>("eth_getBalance", [D, "latest"]))).toBe(E18);
    await stack.ledger.transfer(
      sweepUnbooking({ ...sweep, address: D, asset: ZERO, amount: E18, generation: 0 }),
    );
    await stack.ledger.transfer(
      gasUnbooking({
        chainId: CHAIN_ID,
        of: "sweep s-reorged",
        txHash,
        hotWallet: hot,
        fee,
        generation: 0,
      }),
    );
    await ctx.db.pool.query(
      "UPDATE custody.sweep_items SET swept = NULL WHERE sweep_id = 's-reorged'",
    );
    await ctx.db.pool.query(
      `UPDATE custody.sweeps SET status = 'open', tx_hash = NULL, fee = NULL, settled_at = NULL
        WHERE id = 's-reorged'`,
    );

    const next = await role.run({ chain });
    expect(next.mode).toBe("incremental");
    expect(next.block).toBeGreaterThan(swept.block);
    expect(kinds(next)).toEqual([]);
    expect(kinds(await role.run({ chain, full: true }))).toEqual([]);
  });
});
