/**
 * A native sweep on a chain without traces: no fact shows the value leaving the deposit address
 * (an internal call), and its booking carries no chain reference. The signer settles it once its
 * block meets the confirmation rule; the reconciler role's run stays its grace period behind the
 * final block, so its next run may be at a block below the sweep's. The run there, and the runs
 * after, must count the swept address at what it holds at their block, and the sweep in the ledger
 * only where it had happened: no break on either side.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshAddress, sendAndMine } from "../../indexers/testing/chain.js";
import type { RunSummary } from "./reconcile.js";
import { bookNativeSweep, depositAndCredit, noRotationRole } from "./testing/nativeSweep.js";
import { mine, startWatchedChain, sync, type WatchedChain } from "./testing/watchedChain.js";

const E18 = 10n ** 18n;
const D = freshAddress(231);
/** Runtime code: send this address's whole balance to the caller (a forwarder's flush). */
const FLUSH = "0x600060006000600047335af100";

let w: WatchedChain;

const kinds = (s: RunSummary) => s.breaks.map((b) => `${b.type} ${b.key}`);

beforeAll(async () => {
  w = await startWatchedChain({
    config: { traces: false, confirmations: { kind: "blocks", blocks: 2 } },
    deposits: [{ address: D, owner: "alice" }],
  });
});

afterAll(async () => {
  await w?.stop();
});

describe("a native sweep without traces, settled above the role's block", () => {
  it("is no break at a block below it, nor in the runs after", async () => {
    const { rpc, chain, hot } = w;
    const role = noRotationRole(w);
    await depositAndCredit(w, D, E18);
    const base = await role.run({ chain });
    expect(kinds(base)).toEqual([]);

    // The sweep: the hot wallet calls the deposit address, which sends its balance back inside.
    await rpc("anvil_setCode", [D, FLUSH]);
    const r = await sendAndMine(rpc, { from: hot, to: D, value: 0n, gas: 100_000n });
    expect(r.status).toBe("0x1");
    const B = Number(r.blockNumber);
    expect(BigInt(await rpc<Hex>("eth_getBalance", [D, "latest"]))).toBe(0n);
    await mine(w, 3);
    await sync(w);
    // Settled as the signer settles it: booked, without a chain reference for the native move.
    await bookNativeSweep(w, {
      sweepId: "s1",
      address: D,
      amount: E18,
      receipt: r,
      salt: `0x${"1".padStart(64, "0")}`,
    });

    // The role's run, its grace period behind: below the sweep's block.
    const behind = await role.run({ chain, block: B - 1 });
    expect(kinds(behind)).toEqual([]);
    // And the next ones, at and above it.
    const at = await role.run({ chain });
    expect(at.block).toBeGreaterThanOrEqual(B);
    expect(kinds(at)).toEqual([]);
    expect(kinds(await role.run({ chain, full: true }))).toEqual([]);
  });
});
