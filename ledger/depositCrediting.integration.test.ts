/**
 * Deposit crediting rules against real Postgres, with chain facts written directly into
 * chain.transfers (the anvil + real indexer path is in depositCrediting.anvil.integration.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "./depositCrediting.js";
import { depositTransferName, transferId } from "./transferId.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const DEPOSIT = `0x${"d1".repeat(20)}`;
const HOT = `0x${"a1".repeat(20)}`;
let ctx: TestContext;
let ledger: Ledger;
let crediting: DepositCrediting;
let txCounter = 0;

const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "0")}`;

async function fact(f: {
  tx: string;
  block: string;
  to?: string;
  amount?: bigint;
  status?: "seen" | "confirmed" | "orphaned";
  kind?: string;
  afterConfirmation?: boolean;
}) {
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
       from_address, to_address, amount, status, orphaned_after_confirmation)
     VALUES ($1, 10, $2, $3, 0, 'tx', $4, $5, $6, $7, $8, $9, $10)`,
    [
      CHAIN,
      f.block,
      f.tx,
      f.kind ?? "native",
      ZERO,
      `0x${"ee".repeat(20)}`,
      f.to ?? DEPOSIT,
      (f.amount ?? 100n).toString(),
      f.status ?? "seen",
      f.afterConfirmation ?? false,
    ],
  );
}
const setStatus = (tx: string, block: string, status: string, afterConfirmation = false) =>
  ctx.db.pool.query(
    "UPDATE chain.transfers SET status = $3, orphaned_after_confirmation = $4 WHERE tx_hash = $1 AND block_hash = $2",
    [tx, block, status, afterConfirmation],
  );
const userBalance = async (owner: string) =>
  (await ledger.getAccount({ assetId: ETH, name: `user:${owner}` }))?.creditsPosted ?? 0n;

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'deposit', 'alice'), ($1, $3, 'hot', 'hot-1')`,
    [CHAIN, DEPOSIT, HOT],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("deposit crediting", () => {
  it("credits a confirmed deposit exactly once, with the contract's id, chain reference and event", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xb1" });
    expect((await crediting.sweep()).credited).toBe(0); // seen is not final enough
    await setStatus(tx, "0xb1", "confirmed");
    // A doorbell's block range bounds the scan (the fact is in block 10).
    expect((await crediting.sweep({ chainId: CHAIN, fromBlock: 11, toBlock: 20 })).credited).toBe(
      0,
    );
    // Concurrent sweeps (doorbell + timer) still credit once.
    const runs = await Promise.all([crediting.sweep(), crediting.sweep(), crediting.sweep()]);
    expect(runs.reduce((n, r) => n + r.credited, 0)).toBe(1);
    expect(await userBalance("alice")).toBe(100n);
    const t = await ledger.getTransfer(transferId(depositTransferName(CHAIN, tx, "tx")));
    expect(t).toMatchObject({
      kind: "deposit",
      amount: 100n,
      chainRef: { chainId: CHAIN, txHash: tx, position: "tx" },
    });
    const ev = await ctx.db.pool.query(
      "SELECT type, payload FROM ledger.events WHERE transfer_id = $1",
      [t?.id],
    );
    expect(ev.rows).toEqual([
      {
        type: "deposit.credited",
        payload: expect.objectContaining({ owner: "alice", amount: "100" }),
      },
    ]);
    expect((await crediting.sweep()).credited).toBe(0);
  });

  it("never credits a fact orphaned before confirmation, fees, or transfers to non-deposit addresses", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xb2", amount: 7n });
    await setStatus(tx, "0xb2", "orphaned");
    await fact({ tx: txHash(), block: "0xb2", to: HOT, status: "confirmed" });
    await fact({ tx: txHash(), block: "0xb2", kind: "fee", status: "confirmed" });
    const before = await userBalance("alice");
    expect((await crediting.sweep()).credited).toBe(0);
    expect(await userBalance("alice")).toBe(before);
  });

  it("compensates a credit orphaned after confirmation, and credits again if it is re-confirmed elsewhere", async () => {
    const tx = txHash();
    await fact({ tx, block: "0xc1", amount: 50n, status: "confirmed" });
    expect((await crediting.sweep()).credited).toBe(1);
    const userBefore = await userBalance("alice");
    await setStatus(tx, "0xc1", "orphaned", true);
    expect(await crediting.sweep()).toEqual({ credited: 0, compensated: 1 });
    expect(await crediting.sweep()).toEqual({ credited: 0, compensated: 0 });
    const suspense = await ledger.balance({ assetId: ETH, name: "suspense" });
    expect(suspense.debitsPosted).toBe(50n);
    expect(await userBalance("alice")).toBe(userBefore); // the user keeps it; suspense shows the gap
    const ev = await ctx.db.pool.query(
      "SELECT payload FROM ledger.events WHERE type = 'deposit.compensated'",
    );
    expect(ev.rows).toHaveLength(1);

    // The same transaction mined again in another block and confirmed: credited a second time.
    await fact({ tx, block: "0xc2", amount: 50n, status: "confirmed" });
    expect(await crediting.sweep()).toEqual({ credited: 1, compensated: 0 });
    expect(await userBalance("alice")).toBe(userBefore + 50n);
    expect(
      await ledger.getTransfer(transferId(depositTransferName(CHAIN, tx, "tx", 1))),
    ).toBeDefined();
    expect((await ledger.check()).problems).toEqual([]);
  });
});
