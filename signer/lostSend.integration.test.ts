/**
 * A lost send must not freeze the hot wallet until the bump interval. The lowest open nonce is the
 * chain's mined count, every later nonce waits behind it, and the node holds nothing executable
 * there: the signer resends the stored bytes (a send the node acknowledged and lost), or, when the
 * node says it already has those bytes yet counts nothing pending, replaces them at once. Real
 * anvil (automine), real Postgres, the KMS emulator; the lying chain loses or refuses the sends.
 */
import { type Hex, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../chains/testing/lyingChain/proxy.js";
import { defaultSettings } from "./broadcaster/index.js";
import type { KmsAccount } from "./kmsAccount.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<LyingProxy>;
let proxy: LyingProxy;
const N = 5;

beforeAll(async () => {
  // The signer talks to the chain only through the lying proxy.
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
    proxy: startLyingProxy,
  });
  proxy = t.proxy!;
});

afterAll(async () => {
  await t?.stop();
});

async function request(prefix: string, account: KmsAccount): Promise<string[]> {
  const ids = Array.from({ length: N }, (_, i) => `${prefix}-${i}`);
  await t.withdraw(ids, { from: account.address });
  return ids;
}

async function heals(action: string, wallet: string): Promise<number> {
  const m = await t.ctx.common.metrics.registry
    .getSingleMetric("custody_signer_stall_heals_total")
    ?.get();
  return (
    m?.values.find((v) => v.labels.action === action && v.labels.wallet === wallet.toLowerCase())
      ?.value ?? 0
  );
}

async function attempts(requestId: string) {
  const { rows } = await t.ctx.db.pool.query<{ tx_hash: Hex; status: string }>(
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
        if ((await getTxRequest(t.ctx.db.pool, id))?.status !== "confirmed") return false;
      return true;
    },
    { timeoutMs: withinMs, everyMs: 100 },
  );
}

describe("a lost send", () => {
  // The bump interval is the default 30 s; recovery must come well before it.
  const within = 12_000;

  it("is resent (the same stored bytes) when the node acknowledged it but never had it", async () => {
    expect(t.chain.bumpIntervalMs).toBe(30_000);
    expect(defaultSettings(t.chain).stallResendMs).toBeLessThanOrEqual(within / 4);
    const account = await t.wallet();
    const ids = await request("lost", account);
    let dropped = 0;
    // The first send of nonce 0 is answered with its hash and never reaches anvil.
    proxy.setSendDrop((raw) => nonceOf(raw) === 0 && dropped++ === 0);
    const signer = t.run(account);
    try {
      await waitFor("nonce 0 lost and 1.. sent", async () => {
        const c = await t.ctx.db.pool.query(
          "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = ANY($1) AND status = 'broadcast'",
          [ids],
        );
        return dropped === 1 && c.rows[0].n === N;
      });
      // The wallet is frozen behind nonce 0: the later nonces wait in anvil's pool.
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(0);
      await allConfirmed(ids, within);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(N);
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
    const account = await t.wallet();
    const ids = await request("wedged", account);
    // Nonce 0's first bytes: the node answers "already known" every time and never executes them
    // (as anvil's pool does with a transaction it queued behind a nonce that has since mined).
    let wedged: string | undefined;
    proxy.setSendIntercept((raw) => {
      if (nonceOf(raw) !== 0) return undefined;
      wedged ??= raw;
      return raw === wedged ? "already known" : undefined;
    });
    const signer = t.run(account);
    try {
      await allConfirmed(ids, within);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(N);
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
