/**
 * A lost send must not freeze the hot wallet until the bump interval. The lowest open nonce is the
 * chain's mined count, every later nonce waits behind it, and the node holds nothing executable
 * there: the signer resends the stored bytes (a send the node acknowledged and lost), or, when the
 * node says it already has those bytes yet counts nothing pending, replaces them at once. Real
 * anvil (automine), real Postgres, the KMS emulator; the lying chain loses or refuses the sends.
 */
import { CreateKeyCommand } from "@aws-sdk/client-kms";
import { type Hex, parseEther, parseTransaction, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/proxy.js";
import type { ChainConfig } from "../foundation/config.js";
import { withTransaction } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { defaultSettings } from "./broadcaster/index.js";
import { createKmsAccount, type KmsAccount } from "./kmsAccount.js";
import { getTxRequest, requestTransaction } from "./requests.js";
import { createSignerHarness, RECIPIENT, type SignerHarness, waitFor } from "./testing/harness.js";
import { startWalletSigner } from "./walletSigner.js";

let ctx: TestContext;
let h: SignerHarness;
let proxy: LyingProxy;
let chain: ChainConfig;
const N = 5;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [{ chainId: 31337, config: { confirmations: { kind: "blocks", blocks: 1 } } }],
  });
  h = await createSignerHarness(ctx);
  proxy = await startLyingProxy(ctx.config.chains[0]!.rpcUrls[0]!);
  // The signer talks to the chain only through the lying proxy.
  chain = { ...ctx.config.chains[0]!, rpcUrls: [proxy.url] };
});

afterAll(async () => {
  await proxy?.close();
  await h?.close();
  await ctx?.cleanup();
});

async function newWallet(): Promise<KmsAccount> {
  const key = await h.kms.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
  );
  const account = await createKmsAccount({ kms: h.kms, keyId: key.KeyMetadata!.KeyId! });
  await h.rpc("anvil_setBalance", [account.address, toHex(parseEther("10"))]);
  return account;
}

async function request(prefix: string, account: KmsAccount): Promise<string[]> {
  const ids = Array.from({ length: N }, (_, i) => `${prefix}-${i}`);
  await withTransaction(ctx.db.pool, async (c) => {
    for (const id of ids)
      await requestTransaction(c, {
        id,
        chainId: 31337,
        from: account.address,
        to: RECIPIENT,
        value: 1n,
        kind: "withdrawal",
        refId: id,
      });
  });
  return ids;
}

function run(account: KmsAccount) {
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

async function heals(action: string, wallet: string): Promise<number> {
  const m = await ctx.common.metrics.registry
    .getSingleMetric("custody_signer_stall_heals_total")
    ?.get();
  return (
    m?.values.find((v) => v.labels.action === action && v.labels.wallet === wallet.toLowerCase())
      ?.value ?? 0
  );
}

async function attempts(requestId: string) {
  const { rows } = await ctx.db.pool.query<{ tx_hash: Hex; status: string }>(
    "SELECT tx_hash, status FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
    [requestId],
  );
  return rows;
}

const nonceOf = (raw: string) => parseTransaction(raw as Hex).nonce ?? 0;

/** Every request confirmed within `withinMs`, else the test fails here. */
async function allConfirmed(ids: string[], withinMs: number) {
  await waitFor(
    `all ${ids.length} confirmed within ${withinMs} ms`,
    async () => {
      for (const id of ids)
        if ((await getTxRequest(ctx.db.pool, id))?.status !== "confirmed") return false;
      return true;
    },
    { timeoutMs: withinMs, everyMs: 100 },
  );
}

describe("a lost send", () => {
  // The bump interval is the default 30 s; recovery must come well before it.
  const within = 12_000;

  it("is resent (the same stored bytes) when the node acknowledged it but never had it", async () => {
    expect(chain.bumpIntervalMs).toBe(30_000);
    expect(defaultSettings(chain).stallResendMs).toBeLessThanOrEqual(within / 4);
    const account = await newWallet();
    const ids = await request("lost", account);
    let dropped = 0;
    // The first send of nonce 0 is answered with its hash and never reaches anvil.
    proxy.setSendDrop((raw) => nonceOf(raw) === 0 && dropped++ === 0);
    const signer = run(account);
    try {
      await waitFor("nonce 0 lost and 1.. sent", async () => {
        const c = await ctx.db.pool.query(
          "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = ANY($1) AND status = 'broadcast'",
          [ids],
        );
        return dropped === 1 && c.rows[0].n === N;
      });
      // The wallet is frozen behind nonce 0: the later nonces wait in anvil's pool.
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(0);
      await allConfirmed(ids, within);
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(N);
      // Healed by the very same bytes: one attempt per request, no bump, nothing paid twice.
      for (const id of ids) {
        const list = await attempts(id);
        expect(list).toHaveLength(1);
        expect(list[0]!.status).toBe("mined");
      }
      expect(await heals("resend", account.address)).toBe(1);
      expect(await heals("bump", account.address)).toBe(0);
      expect(proxy.stats().send_dropped).toBe(1);
    } finally {
      proxy.setSendDrop(null);
      await signer.stop();
    }
  });

  it("is replaced at once when the node says it already has the bytes but holds nothing pending", async () => {
    const account = await newWallet();
    const ids = await request("wedged", account);
    // Nonce 0's first bytes: the node answers "already known" every time and never executes them
    // (as anvil's pool does with a transaction it queued behind a nonce that has since mined).
    let wedged: string | undefined;
    proxy.setSendIntercept((raw) => {
      if (nonceOf(raw) !== 0) return undefined;
      wedged ??= raw;
      return raw === wedged ? "already known" : undefined;
    });
    const signer = run(account);
    try {
      await allConfirmed(ids, within);
      expect(await h.client.getTransactionCount({ address: account.address })).toBe(N);
      // Nonce 0: the first bytes replaced by one early bump that mined; the rest sent once.
      const first = await attempts(ids[0]!);
      expect(first.map((a) => a.status)).toEqual(["replaced", "mined"]);
      for (const id of ids.slice(1))
        expect((await attempts(id)).map((a) => a.status)).toEqual(["mined"]);
      expect(await heals("resend", account.address)).toBe(1);
      expect(await heals("bump", account.address)).toBe(1);
    } finally {
      proxy.setSendIntercept(null);
      await signer.stop();
    }
  });
});
