/**
 * Stuck transactions on anvil with automine off: a base fee raised above what the first attempt
 * pays keeps it out of blocks; the signer replaces it at the same nonce with fees raised at least
 * 10% and the replacement mines. With a low fee cap the bump stops at the cap and raises the alert.
 */
import { CreateKeyCommand } from "@aws-sdk/client-kms";
import { parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../foundation/config.js";
import { withTransaction } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createKmsAccount, type KmsAccount } from "./kmsAccount.js";
import { getTxRequest, requestTransaction } from "./requests.js";
import { createSignerHarness, RECIPIENT, type SignerHarness, waitFor } from "./testing/harness.js";
import { startWalletSigner } from "./walletSigner.js";

let ctx: TestContext;
let h: SignerHarness;
const GWEI = 1_000_000_000n;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        config: { bumpIntervalMs: 300, confirmations: { kind: "blocks", blocks: 2 } },
      },
    ],
  });
  h = await createSignerHarness(ctx);
  await h.rpc("evm_setAutomine", [false]);
});

afterAll(async () => {
  await h?.close();
  await ctx?.cleanup();
});

type AttemptRow = { tx_hash: string; status: string; max_fee: bigint; tip: bigint };

async function attempts(requestId: string): Promise<AttemptRow[]> {
  const { rows } = await ctx.db.pool.query(
    `SELECT tx_hash, status, max_fee_per_gas::text AS max_fee, max_priority_fee_per_gas::text AS tip
     FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id`,
    [requestId],
  );
  return rows.map((r) => ({ ...r, max_fee: BigInt(r.max_fee), tip: BigInt(r.tip) }));
}

async function nextBaseFee(): Promise<bigint> {
  const h2 = await h.client.getFeeHistory({
    blockCount: 1,
    blockTag: "latest",
    rewardPercentiles: [],
  });
  return h2.baseFeePerGas.at(-1)!;
}

async function newWallet(): Promise<KmsAccount> {
  const key = await h.kms.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
  );
  const account = await createKmsAccount({ kms: h.kms, keyId: key.KeyMetadata!.KeyId! });
  await h.rpc("anvil_setBalance", [account.address, toHex(parseEther("100"))]);
  return account;
}

async function request(id: string, account: KmsAccount) {
  await withTransaction(ctx.db.pool, (c) =>
    requestTransaction(c, {
      id,
      chainId: 31337,
      from: account.address,
      to: RECIPIENT,
      value: 1n,
      kind: "withdrawal",
      refId: id,
    }),
  );
}

function run(chain: ChainConfig, account: KmsAccount) {
  return startWalletSigner({
    common: ctx.common,
    pool: ctx.db.pool,
    queues: ctx.queues,
    chain,
    account: async () => account,
    databaseUrl: ctx.db.url,
    pollMs: 50,
  });
}

/** Bump passes that found this wallet's attempt at the fee cap (this test's registry). */
async function capHits(account: KmsAccount): Promise<number> {
  const metric = ctx.common.metrics.registry.getSingleMetric("custody_signer_fee_cap_hits_total");
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
    const chain = ctx.config.chains[0]!;
    const account = await newWallet();
    const signer = run(chain, account);
    try {
      await request("stuck-1", account);
      const first = await waitFor("first attempt sent", async () => {
        const a = await attempts("stuck-1");
        return a[0]?.status === "broadcast" ? a[0] : undefined;
      });
      // Price it out: the next block's base fee is above what the attempt pays.
      await h.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(first.max_fee + GWEI)]);
      await h.rpc("evm_mine");
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(0);
      const base = await nextBaseFee();
      await waitFor("a replacement paying the base fee", async () => {
        const a = await attempts("stuck-1");
        return a.length >= 2 && a.at(-1)!.max_fee >= base && a.at(-1)!.status === "broadcast";
      });
      await h.rpc("evm_mine");
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(1);
      await h.rpc("anvil_mine", ["0x2"]);
      const done = await waitFor("confirmed", async () => {
        const r = await getTxRequest(ctx.db.pool, "stuck-1");
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
    const chain: ChainConfig = { ...ctx.config.chains[0]!, maxFeePerGas: cap };
    const account = await newWallet();
    const signer = run(chain, account);
    try {
      await request("capped-1", account);
      await waitFor(
        "first attempt sent",
        async () => (await attempts("capped-1"))[0]?.status === "broadcast",
      );
      await h.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(10n * base0)]);
      await h.rpc("evm_mine");
      const row = await waitFor("fee cap alert", async () => {
        const { rows } = await ctx.db.pool.query(
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
      await h.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(base0)]);
      await waitFor("the capped attempt back in the pool", async () => {
        const pool = await h.rpc<{ pending: Record<string, unknown> }>("txpool_inspect");
        return Object.keys(pool.pending).some(
          (a) => a.toLowerCase() === account.address.toLowerCase(),
        );
      });
      await h.rpc("evm_mine");
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(1);
      await h.rpc("anvil_mine", ["0x2"]);
      const done = await waitFor("confirmed", async () => {
        const r = await getTxRequest(ctx.db.pool, "capped-1");
        return r?.status === "confirmed" ? r : undefined;
      });
      expect(done.effectiveGasPrice! <= cap).toBe(true);
    } finally {
      await signer.stop();
    }
  });
});
