/**
 * A hot wallet taken out of `hotWallets[]` while it still has booked value above its ceiling
 * (docs/deploy.md: defund first): no signer sends from it any more, so a cold move for it would
 * be held and wait for ever. None is requested; the excess is the gauge custody_cold_move_no_signer
 * (ColdMoveNoSigner) and one error line names the wallet and the command. Given back its entry,
 * its excess moves. Also: a pass reads the published finalized block once, not once per (wallet,
 * asset). Real anvil, Postgres, Redis, KMS emulator, indexer; no signer runs.
 */
import { type Address, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { registerHotWallet } from "../hotWalletKeys.js";
import { startColdMoves } from "./coldMoves.js";
import { noSignerGauge } from "./noSigner.js";
import {
  CHAIN_ID,
  fundHotWalletFinal,
  NATIVE,
  type SweepStack,
  startSweepStack,
} from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
const REORG_WINDOW = 8;
const CEILING = parseEther("0.5");

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    reorgWindow: REORG_WINDOW,
    nativeHotCeiling: CEILING.toString(),
    coldAddress: COLD,
  });
});

afterAll(async () => {
  await s?.close();
});

const moves = async () =>
  (await s.ctx.db.pool.query("SELECT id FROM custody.cold_moves")).rows.map((r) => r.id);

const gauge = async () =>
  (await noSignerGauge(s.ctx.common).get()).values.find(
    (v) => v.labels.wallet === s.hot.toLowerCase() && v.labels.asset === NATIVE,
  )?.value;

describe("cold moves", () => {
  it("read the published finalized block once per pass", async () => {
    // Two registered hot wallets, one asset: two (wallet, asset) pairs sized in one pass.
    const chain = s.ctx.config.chains[0]!;
    await registerHotWallet(s.ctx.db.pool, chain, "0x00000000000000000000000000000000000b0b00");
    let reads = 0;
    const pool = new Proxy(s.ctx.db.pool, {
      get(target, prop, receiver) {
        if (prop !== "query") return Reflect.get(target, prop, receiver);
        return (sql: unknown, ...rest: unknown[]) => {
          if (typeof sql === "string" && sql.includes("chain.checkpoints")) reads++;
          return (target.query as (...a: unknown[]) => unknown)(sql, ...rest);
        };
      },
    }) as Pool;
    const started = await startColdMoves({
      common: s.ctx.common,
      pool,
      ledger: s.ledger,
      chain,
      hotWallets: s.hotWallets,
      adapter: createEvmAdapter(chain, { common: s.ctx.common }),
    });
    expect(started).toEqual([]);
    // old code: expected 2 to be 1 (once per wallet and asset)
    expect(reads).toBe(1);
  });

  it("requests none for a wallet no configured key signs for, and says so once", async () => {
    await fundHotWalletFinal(s, REORG_WINDOW);

    // The wallet is out of hotWallets[] (its signer no longer runs).
    const { sweeper, lines } = s.loggedSweeper([]);
    for (let i = 0; i < 3; i++) {
      // old code: expected [ { id: 'cold_move:31337:…', asset: '0x0…0', amount: 1499…n } ] to deeply equal []
      expect((await sweeper.tick(CHAIN_ID)).coldStarted).toEqual([]);
    }
    expect(await moves()).toEqual([]);
    const excess = await s.balanceOf(NATIVE, `custody:hot:${s.hot.toLowerCase()}`);
    expect(await gauge()).toBe(Number(excess - CEILING));
    const said = lines.filter((l) => l.msg.includes("has no configured signer"));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({
      level: 50,
      wallet: s.hot.toLowerCase(),
      asset: NATIVE,
      excess: (excess - CEILING).toString(),
      command: `custody-node treasury defund --chain ${s.ctx.config.chains[0]!.key} --wallet ${s.hot.toLowerCase()} --tx <hash> --by <you> --reason "removed hot wallet"`,
    });

    // Given back its entry: its excess moves, and the worker says the state ended.
    const configured = await s.sweeper.tick(CHAIN_ID);
    expect(configured.coldStarted).toEqual([
      { id: expect.any(String), asset: NATIVE, amount: excess - CEILING },
    ]);
    await sweeper.tick(CHAIN_ID);
    expect(await gauge()).toBe(0);
    expect(lines.filter((l) => l.msg.includes("no longer above its ceiling"))).toHaveLength(1);
  });
});
