/**
 * Fee-on-transfer recovery (feeOnTransferRecovery.ts) when some rows' receipts never come back (a
 * node that pruned them): those rows are read again on later passes, and never keep the rows
 * after them from being read. Before, every pass read the lowest 20 rows: 20 whose receipts stay
 * missing starved every row behind them, whose withdrawals stayed held for ever.
 *
 * Real signer, fee token and anvil; a proxy in front of anvil answers the first 20 rows' receipts
 * with null. The tracker before migration 0111 is imitated, as in ops/e2e/withdrawalFeeToken.test.ts,
 * by a trigger that leaves every request's fee_on_transfer NULL while the payments mine.
 */
import { encodeFunctionData, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anvilRpc, sendAndMine } from "../../indexers/testing/chain.js";
import { acquireLease, type Lease, leaseKey } from "../lease.js";
import { deployFeeToken, FEE_TOKEN } from "../sweeps/testing/feeToken.js";
import { waitFor } from "../testing/harness.js";
import { type RpcProxy, startRpcProxy } from "../testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "../testing/signerTest.js";
import type { BroadcasterContext } from "./context.js";
import { createFeeOnTransferRecovery } from "./feeOnTransferRecovery.js";
import { createBroadcasterContext } from "./index.js";

const DEST = "0x000000000000000000000000000000000000bEEF";
/** anvil dev account 3: mints the hot wallet's tokens (anyone may mint the test token). */
const MINTER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906" as const;
/** Rows whose receipts stay missing: as many as a pass reads (PER_PASS). */
const UNREADABLE = 20;
const PAYMENTS = UNREADABLE + 3;

let t: SignerTest<RpcProxy>;
/** The payments by nonce: request id and tx hash. */
let paid: { id: string; tx_hash: Hex }[] = [];

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      config: {
        confirmations: { kind: "blocks", blocks: 1 },
        reorgWindow: 4,
        tokens: [{ address: FEE_TOKEN, symbol: "FEE", decimals: 18 }],
      },
    },
    proxy: startRpcProxy,
  });
  const rpc = anvilRpc(t.ctx.config.chains[0]!.rpcUrls[0]!);
  const abi = await deployFeeToken(rpc);
  await sendAndMine(rpc, {
    from: MINTER,
    to: FEE_TOKEN,
    data: encodeFunctionData({ abi, functionName: "mint", args: [t.account.address, 10n ** 6n] }),
  });
  // The tracker before 0111 had no fee_on_transfer to write (every write leaves it NULL).
  await t.ctx.db.pool.query(`
    CREATE FUNCTION custody.test_before_0111() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.fee_on_transfer := NULL; RETURN NEW; END $$;
    CREATE TRIGGER test_before_0111 BEFORE INSERT OR UPDATE ON custody.tx_requests
      FOR EACH ROW EXECUTE FUNCTION custody.test_before_0111()`);
  await t.withdraw(
    Array.from({ length: PAYMENTS }, (_, i) => ({
      id: `fot-${String(i).padStart(2, "0")}`,
      to: FEE_TOKEN,
      value: 0n,
      data: encodeFunctionData({ abi, functionName: "transfer", args: [DEST, 1_000n + BigInt(i)] }),
    })),
  );
  const signer = t.run(t.account, { settings: { receiptGraceMs: 500, fullSearchIntervalMs: 200 } });
  try {
    await waitFor(
      "every payment confirmed",
      async () => {
        const { rows } = await t.ctx.db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM custody.tx_requests
            WHERE id LIKE 'fot-%' AND status = 'confirmed'`,
        );
        if (rows[0]!.n === PAYMENTS) return true;
        await t.rpc("evm_mine");
        return false;
      },
      { timeoutMs: 90_000, everyMs: 200 },
    );
  } finally {
    await signer.stop();
  }
  await t.ctx.db.pool.query(`
    DROP TRIGGER test_before_0111 ON custody.tx_requests;
    DROP FUNCTION custody.test_before_0111()`);
  const { rows } = await t.ctx.db.pool.query<{
    id: string;
    tx_hash: Hex;
    receipt_success: boolean;
    transfer_position: string | null;
    fee_on_transfer: unknown;
  }>(
    `SELECT id, tx_hash, receipt_success, transfer_position, fee_on_transfer
       FROM custody.tx_requests WHERE id LIKE 'fot-%' ORDER BY nonce`,
  );
  // What that revision left: paid, nothing to book any of them from.
  expect(rows).toHaveLength(PAYMENTS);
  for (const r of rows)
    expect(r).toMatchObject({
      receipt_success: true,
      transfer_position: null,
      fee_on_transfer: null,
    });
  paid = rows.map((r) => ({ id: r.id, tx_hash: r.tx_hash.toLowerCase() as Hex }));
}, 180_000);

afterAll(async () => {
  t?.proxy?.setIntercept(undefined);
  await t?.stop();
});

/** The broadcaster's context for the harness's wallet on the proxied chain. */
function context(): BroadcasterContext {
  return createBroadcasterContext({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
    chain: t.chain,
    account: t.account,
    settings: { fullSearchIntervalMs: 0 },
  });
}

async function recovered(): Promise<Set<string>> {
  const { rows } = await t.ctx.db.pool.query<{ id: string }>(
    `SELECT r.id FROM custody.tx_requests r
      WHERE r.id LIKE 'fot-%' AND r.fee_on_transfer IS NOT NULL
        AND EXISTS (SELECT 1 FROM custody.tx_request_events e
                     WHERE e.request_id = r.id AND e.event = 'fee_on_transfer_recovered')`,
  );
  return new Set(rows.map((r) => r.id));
}

describe("fee-on-transfer recovery", () => {
  it("reaches the rows behind a pass's worth whose receipts never come back, and reads those again later", async () => {
    const missing = new Set<string>(paid.slice(0, UNREADABLE).map((p) => p.tx_hash));
    const asked = new Map<string, number>();
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_getTransactionReceipt") return undefined;
      const hash = String((call.params as string[])[0]).toLowerCase();
      asked.set(hash, (asked.get(hash) ?? 0) + 1);
      // The node pruned them.
      return missing.has(hash) ? { result: null } : undefined;
    });
    const lease = (await acquireLease({
      databaseUrl: t.ctx.db.url,
      key: leaseKey(t.chain.chainId, t.account.address),
      signal: new AbortController().signal,
      once: true,
    })) as Lease;
    expect(lease.isHeld()).toBe(true);
    try {
      const recovery = createFeeOnTransferRecovery(context(), { everyMs: 0 });
      // ceil(23 / 20) passes reach every row.
      await recovery.run(lease);
      await recovery.run(lease);
      const behind = paid.slice(UNREADABLE).map((p) => p.id);
      expect(await recovered()).toEqual(new Set(behind));
      // The rows whose receipts are missing were read, and nothing was decided from that.
      for (const p of paid.slice(0, UNREADABLE)) expect(asked.get(p.tx_hash)).toBe(1);

      // Missing data is never given up: once the node has them again, they are read and filled.
      missing.clear();
      await recovery.run(lease);
      expect(await recovered()).toEqual(new Set(paid.map((p) => p.id)));
      const { rows } = await t.ctx.db.pool.query<{ status: string; transfer_position: unknown }>(
        `SELECT status, transfer_position FROM custody.tx_requests WHERE id LIKE 'fot-%'`,
      );
      // Only data added: no status changed.
      for (const r of rows) expect(r).toEqual({ status: "confirmed", transfer_position: null });
    } finally {
      t.proxy!.setIntercept(undefined);
      await lease.release();
    }
  }, 60_000);
});
