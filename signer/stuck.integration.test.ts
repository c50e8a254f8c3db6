/**
 * Stuck transactions on anvil with automine off: a base fee raised above what the first attempt
 * pays keeps it out of blocks; the signer replaces it at the same nonce with fees raised at least
 * 10% and the replacement mines. With a low fee cap the bump stops at the cap and raises the alert.
 */
import { parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import type { KmsAccount } from "./kmsAccount.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
const GWEI = 1_000_000_000n;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { bumpIntervalMs: 300, confirmations: { kind: "blocks", blocks: 2 } } },
  });
  await t.rpc("evm_setAutomine", [false]);
});

afterAll(async () => {
  await t?.stop();
});

type AttemptRow = { tx_hash: string; status: string; max_fee: bigint; tip: bigint };

async function attempts(requestId: string): Promise<AttemptRow[]> {
  const { rows } = await t.ctx.db.pool.query<AttemptRow>(
    `SELECT tx_hash, status, max_fee_per_gas AS max_fee, max_priority_fee_per_gas AS tip
     FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id`,
    [requestId],
  );
  return rows;
}

async function nextBaseFee(): Promise<bigint> {
  const h2 = await t.client.getFeeHistory({
    blockCount: 1,
    blockTag: "latest",
    rewardPercentiles: [],
  });
  return h2.baseFeePerGas.at(-1)!;
}

/** Bump passes that found this wallet's attempt at the fee cap (this test's registry). */
async function capHits(account: KmsAccount): Promise<number> {
  const metric = t.ctx.common.metrics.registry.getSingleMetric("custody_signer_fee_cap_hits_total");
  const { values } = (await metric?.get()) ?? { values: [] };
  return values
    .filter((v) =>
      Object.values(v.labels).some(
        (l) => String(l).toLowerCase() === account.address.toLowerCase(),
      ),
    )
    .reduce((sum, v) => sum + v.value, 0);
}

function expectValidReplacements(list: AttemptRow[], cap: bigint) {
  for (let i = 1; i < list.length; i++) {
    expect(list[i]!.max_fee * 100n).toBeGreaterThanOrEqual(list[i - 1]!.max_fee * 110n);
    expect(list[i]!.tip * 100n).toBeGreaterThanOrEqual(list[i - 1]!.tip * 110n);
  }
  for (const a of list) expect(a.max_fee <= cap).toBe(true);
}

describe("stuck transactions", () => {
  it("bumps a transaction priced out by the base fee, and the replacement mines", async () => {
    const chain = t.ctx.config.chains[0]!;
    const account = await t.wallet(parseEther("100"));
    const signer = t.run(account, { chain });
    try {
      await t.withdraw("stuck-1", { from: account.address });
      const first = await waitFor("first attempt sent", async () => {
        const a = await attempts("stuck-1");
        return a[0]?.status === "broadcast" ? a[0] : undefined;
      });
      // Price it out: the next block's base fee is above what the attempt pays.
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(first.max_fee + GWEI)]);
      await t.rpc("evm_mine");
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(0);
      const base = await nextBaseFee();
      await waitFor("a replacement paying the base fee", async () => {
        const a = await attempts("stuck-1");
        return a.length >= 2 && a.at(-1)!.max_fee >= base && a.at(-1)!.status === "broadcast";
      });
      await t.rpc("evm_mine");
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(1);
      await t.rpc("anvil_mine", ["0x2"]);
      const done = await waitFor("confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "stuck-1");
        return r?.status === "confirmed" ? r : undefined;
      });
      const list = await attempts("stuck-1");
      expect(done.txHash).not.toBe(first.tx_hash);
      expect(list.filter((a) => a.status === "mined").map((a) => a.tx_hash)).toEqual([done.txHash]);
      expect(list.filter((a) => a.status !== "mined").every((a) => a.status === "replaced")).toBe(
        true,
      );
      expectValidReplacements(list, chain.maxFeePerGas);
    } finally {
      await signer.stop();
    }
  });

  it("stops at the fee cap and raises the alert instead of exceeding it", async () => {
    const base0 = await nextBaseFee();
    const cap = 3n * base0;
    const chain: ChainConfig = { ...t.ctx.config.chains[0]!, maxFeePerGas: cap };
    const account = await t.wallet(parseEther("100"));
    const signer = t.run(account, { chain });
    try {
      await t.withdraw("capped-1", { from: account.address });
      await waitFor(
        "first attempt sent",
        async () => (await attempts("capped-1"))[0]?.status === "broadcast",
      );
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(10n * base0)]);
      await t.rpc("evm_mine");
      const row = await waitFor("fee cap alert", async () => {
        const { rows } = await t.ctx.db.pool.query(
          "SELECT fee_capped_at FROM custody.tx_requests WHERE id = 'capped-1' AND fee_capped_at IS NOT NULL",
        );
        return rows[0];
      });
      expect(row.fee_capped_at).toBeInstanceOf(Date);
      // Three more bump passes find it at the cap (counted, not timed): nothing may go above it.
      const hits = await capHits(account);
      expect(hits).toBeGreaterThan(0);
      await waitFor("three more bump passes at the cap", async () => {
        return (await capHits(account)) >= hits + 3;
      });
      const list = await attempts("capped-1");
      expect(list.at(-1)!.max_fee).toBe(cap);
      expectValidReplacements(list, cap);
      // When the base fee comes back under the cap, the capped attempt mines.
      // anvil evicted the priced-out attempts; the signer keeps resending the capped one.
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(base0)]);
      await waitFor("the capped attempt back in the pool", async () => {
        const pool = await t.rpc<{ pending: Record<string, unknown> }>("txpool_inspect");
        return Object.keys(pool.pending).some(
          (a) => a.toLowerCase() === account.address.toLowerCase(),
        );
      });
      await t.rpc("evm_mine");
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(1);
      await t.rpc("anvil_mine", ["0x2"]);
      const done = await waitFor("confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "capped-1");
        return r?.status === "confirmed" ? r : undefined;
      });
      expect(done.effectiveGasPrice! <= cap).toBe(true);
    } finally {
      await signer.stop();
    }
  });
});
