import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { TransferFailedError } from "./errors.js";
import { transferId } from "./transferId.js";

let ctx: TestContext;
let ledger: Ledger;
const ETH = "31337:0x0000000000000000000000000000000000000000";
const DEP = "custody:deposits";
const HOT = `custody:hot:0x${"11".repeat(20)}`;

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

const fund = (user: string, amount: bigint) =>
  ledger.transfer({
    id: randomUUID(),
    assetId: ETH,
    debit: DEP,
    credit: user,
    amount,
    kind: "deposit",
  });

async function expectCode(p: Promise<unknown>, code: string) {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TransferFailedError);
  expect((error as TransferFailedError).code).toBe(code);
  return error as TransferFailedError;
}

describe("transfers", () => {
  it("credits and debits double-entry, with available balance", async () => {
    await fund("user:a", 100n);
    expect(await ledger.balance({ assetId: ETH, name: "user:a" })).toEqual({
      debitsPending: 0n,
      debitsPosted: 0n,
      creditsPending: 0n,
      creditsPosted: 100n,
      available: 100n,
    });
    const dep = await ledger.balance({ assetId: ETH, name: DEP });
    expect(dep.debitsPosted).toBeGreaterThanOrEqual(100n);
  });

  it("returns exists for the same fields and names the differing field otherwise", async () => {
    const id = transferId("manual:exists-test");
    const t = {
      id,
      assetId: ETH,
      debit: DEP,
      credit: "user:b",
      amount: 5n,
      kind: "deposit" as const,
    };
    expect(await ledger.transfer(t)).toBe("created");
    expect(await ledger.transfer(t)).toBe("exists");
    const e = await expectCode(
      ledger.transfer({ ...t, amount: 6n }),
      "LEDGER_TRANSFER_EXISTS_MISMATCH",
    );
    expect(e.meta.field).toBe("amount");
    const e2 = await expectCode(
      ledger.transfer({ ...t, credit: "user:c" }),
      "LEDGER_TRANSFER_EXISTS_MISMATCH",
    );
    expect(e2.meta.field).toBe("credit");
    expect((await ledger.balance({ assetId: ETH, name: "user:b" })).creditsPosted).toBe(5n);
  });

  it("refuses to overdraw a user account, and the failed id keeps failing after funding", async () => {
    await fund("user:d", 10n);
    const id = randomUUID();
    const t = {
      id,
      assetId: ETH,
      debit: "user:d",
      credit: HOT,
      amount: 11n,
      kind: "withdrawal" as const,
    };
    await expectCode(ledger.transfer(t), "LEDGER_INSUFFICIENT_BALANCE");
    await fund("user:d", 100n);
    await expectCode(ledger.transfer(t), "LEDGER_INSUFFICIENT_BALANCE");
    expect((await ledger.balance({ assetId: ETH, name: "user:d" })).available).toBe(110n);
  });

  it("validates input and unknown assets without storing anything", async () => {
    await expectCode(
      ledger.transfer({
        id: randomUUID(),
        assetId: "1:0xdead",
        debit: DEP,
        credit: "user:x",
        amount: 1n,
        kind: "deposit",
      }),
      "LEDGER_UNKNOWN_ASSET",
    );
    await expectCode(
      ledger.transfer({
        id: randomUUID(),
        assetId: ETH,
        debit: DEP,
        credit: "user:x",
        amount: 0n,
        kind: "deposit",
      }),
      "LEDGER_INVALID_TRANSFER",
    );
    await expectCode(
      ledger.transfer({
        id: randomUUID(),
        assetId: ETH,
        debit: DEP,
        credit: "treasury:ops",
        amount: 1n,
        kind: "deposit",
      }),
      "LEDGER_INVALID_TRANSFER",
    );
    // a timeout the database cannot store is refused as input, not met as a database error
    const tooLong = await expectCode(
      ledger.hold({
        id: randomUUID(),
        assetId: ETH,
        debit: DEP,
        credit: "user:x",
        amount: 1n,
        kind: "deposit",
        timeoutSeconds: 2 ** 31,
      }),
      "LEDGER_INVALID_TRANSFER",
    );
    expect(tooLong.meta.field).toBe("timeoutSeconds");
  });

  it("keeps a chain reference on its asset's chain: the ledger refuses it, Postgres backs it", async () => {
    const txHash = `0x${"cd".repeat(32)}`;
    const id = randomUUID();
    const refused = await expectCode(
      ledger.transfer({
        id,
        assetId: ETH,
        debit: DEP,
        credit: "user:offchain",
        amount: 1n,
        kind: "deposit",
        chainRef: { chainId: 1, txHash, position: "0" },
      }),
      "LEDGER_INVALID_TRANSFER",
    );
    expect(refused.message).toMatch(/chainRef/);
    // A writer that bypassed the ledger meets the constraint (ledger 0011).
    await fund("user:onchain", 1n); // the two accounts the raw row names
    const row = await ctx.db.pool.query<{ debit: string; credit: string }>(
      `SELECT (SELECT id FROM ledger.accounts WHERE asset_id = $1 AND name = $2)::text AS debit,
              (SELECT id FROM ledger.accounts WHERE asset_id = $1 AND name = $3)::text AS credit`,
      [ETH, DEP, "user:onchain"],
    );
    await expect(
      ctx.db.pool.query(
        `INSERT INTO ledger.transfers (id, asset_id, debit_account_id, credit_account_id, amount,
           type, posted_delta, pending_delta, kind, chain_id, tx_hash, position)
         VALUES ($1, $2, $3, $4, 1, 'single', 1, 0, 'deposit', 1, $5, '0')`,
        [id, ETH, row.rows[0]!.debit, row.rows[0]!.credit, txHash],
      ),
    ).rejects.toMatchObject({ code: "23514", constraint: "transfers_ref_on_asset_chain" });
    const stored = await ctx.db.pool.query("SELECT 1 FROM ledger.transfers WHERE id = $1", [id]);
    expect(stored.rowCount).toBe(0);
  });
});

describe("two-phase transfers", () => {
  it("holds, partially posts (releasing the rest) and refuses a second resolution", async () => {
    await fund("user:h", 100n);
    const hold = randomUUID();
    await ledger.hold({
      id: hold,
      assetId: ETH,
      debit: "user:h",
      credit: HOT,
      amount: 60n,
      kind: "withdrawal",
    });
    let b = await ledger.balance({ assetId: ETH, name: "user:h" });
    expect(b.debitsPending).toBe(60n);
    expect(b.available).toBe(40n);
    await expectCode(
      ledger.transfer({
        id: randomUUID(),
        assetId: ETH,
        debit: "user:h",
        credit: HOT,
        amount: 41n,
        kind: "withdrawal",
      }),
      "LEDGER_INSUFFICIENT_BALANCE",
    );
    await expectCode(
      ledger.postPending({ id: randomUUID(), pendingId: hold, amount: 61n }),
      "LEDGER_EXCEEDS_PENDING_AMOUNT",
    );
    const post = randomUUID();
    expect(await ledger.postPending({ id: post, pendingId: hold, amount: 45n })).toBe("created");
    expect(await ledger.postPending({ id: post, pendingId: hold, amount: 45n })).toBe("exists");
    b = await ledger.balance({ assetId: ETH, name: "user:h" });
    expect(b).toMatchObject({ debitsPending: 0n, debitsPosted: 45n, available: 55n });
    await expectCode(
      ledger.voidPending({ id: randomUUID(), pendingId: hold }),
      "LEDGER_PENDING_ALREADY_POSTED",
    );
    await expectCode(
      ledger.postPending({ id: randomUUID(), pendingId: randomUUID() }),
      "LEDGER_PENDING_NOT_FOUND",
    );
  });

  it("voids a hold and expires one after its timeout", async () => {
    await fund("user:v", 100n);
    const h1 = randomUUID();
    await ledger.hold({
      id: h1,
      assetId: ETH,
      debit: "user:v",
      credit: HOT,
      amount: 30n,
      kind: "withdrawal",
    });
    await ledger.voidPending({ id: randomUUID(), pendingId: h1 });
    expect((await ledger.balance({ assetId: ETH, name: "user:v" })).available).toBe(100n);

    const h2 = randomUUID();
    await ledger.hold({
      id: h2,
      assetId: ETH,
      debit: "user:v",
      credit: HOT,
      amount: 70n,
      kind: "withdrawal",
      timeoutSeconds: 1,
    });
    expect((await ledger.balance({ assetId: ETH, name: "user:v" })).available).toBe(30n);
    // Move the timeout into the past rather than sleeping.
    await ctx.db.pool.query(
      "UPDATE ledger.holds SET timeout_at = now() - interval '1 second' WHERE transfer_id = $1",
      [h2],
    );
    await expectCode(
      ledger.postPending({ id: randomUUID(), pendingId: h2 }),
      "LEDGER_PENDING_EXPIRED",
    );
    expect(await ledger.expireHolds()).toBeGreaterThanOrEqual(1);
    expect((await ledger.balance({ assetId: ETH, name: "user:v" })).available).toBe(100n);
    const t = await ledger.getTransfer(transferId(`expire:${h2}`));
    expect(t?.type).toBe("expire");
  });
});

describe("linked transfers", () => {
  it("fail together", async () => {
    await fund("user:l", 10n);
    const a = randomUUID();
    const b = randomUUID();
    const results = await ledger.createTransfers([
      {
        id: a,
        assetId: ETH,
        debit: DEP,
        credit: "user:l",
        amount: 5n,
        kind: "manual",
        linked: true,
      },
      { id: b, assetId: ETH, debit: "user:l", credit: HOT, amount: 100n, kind: "withdrawal" },
    ]);
    expect(results.map((r) => (r.status === "failed" ? r.code : r.status))).toEqual([
      "LEDGER_LINKED_EVENT_FAILED",
      "LEDGER_INSUFFICIENT_BALANCE",
    ]);
    expect(await ledger.getTransfer(a)).toBeUndefined();
    expect((await ledger.balance({ assetId: ETH, name: "user:l" })).creditsPosted).toBe(10n);
  });

  it("succeed together, and later transfers in a batch see earlier ones", async () => {
    const results = await ledger.createTransfers([
      {
        id: randomUUID(),
        assetId: ETH,
        debit: DEP,
        credit: "user:m",
        amount: 50n,
        kind: "deposit",
        linked: true,
      },
      {
        id: randomUUID(),
        assetId: ETH,
        debit: "user:m",
        credit: HOT,
        amount: 50n,
        kind: "withdrawal",
      },
    ]);
    expect(results.map((r) => r.status)).toEqual(["created", "created"]);
    expect((await ledger.balance({ assetId: ETH, name: "user:m" })).available).toBe(0n);
  });
});

describe("createNewTransfers: every id new and accepted, or nothing written", () => {
  const credit = (user: string, amount: bigint, id = randomUUID()) => ({
    id,
    assetId: ETH,
    debit: DEP,
    credit: user,
    amount,
    kind: "deposit" as const,
  });
  const credited = async (user: string) =>
    (await ledger.getAccount({ assetId: ETH, name: user }))?.creditsPosted ?? 0n;

  it("creates a batch of new ids, with or without the caller's transaction", async () => {
    const alone = [credit("user:n1", 3n), credit("user:n2", 4n)];
    expect((await ledger.createNewTransfers(alone))?.map((r) => r.status)).toEqual([
      "created",
      "created",
    ]);
    const inner = [credit("user:n1", 5n)];
    const results = await withTransaction(ctx.db.pool, (client) =>
      ledger.createNewTransfers(inner, { client }),
    );
    expect(results?.map((r) => r.status)).toEqual(["created"]);
    expect(await credited("user:n1")).toBe(8n);
    expect(await credited("user:n2")).toBe(4n);
  });

  it("answers null and writes nothing when an id exists, has failed, or a transfer is refused", async () => {
    const existing = credit("user:n3", 7n);
    await ledger.createTransfers([existing]);
    const failedId = randomUUID();
    expect(
      (
        await ledger.createTransfers([
          { ...credit(DEP, 1_000_000n, failedId), debit: "user:n3", kind: "withdrawal" },
        ])
      )[0],
    ).toMatchObject({ status: "failed", code: "LEDGER_INSUFFICIENT_BALANCE" });
    const unknownAsset = { ...credit("user:n3", 1n), assetId: "31337:0x" + "99".repeat(20) };
    for (const [odd, useClient] of [
      [existing, false],
      [existing, true],
      [{ ...credit("user:n3", 1n), id: failedId }, false],
      [unknownAsset, true],
    ] as const) {
      const fresh = [credit("user:n3", 1n), credit("user:n4", 2n)];
      const batch = [fresh[0]!, odd, fresh[1]!];
      const before = await ledger.balance({ assetId: ETH, name: DEP });
      const callerRow = randomUUID();
      const results = useClient
        ? await withTransaction(ctx.db.pool, async (client) => {
            // The caller's own write before it stands: only the ledger's batch is undone.
            await ledger.createTransfers([credit("user:n5", 1n, callerRow)], { client });
            return ledger.createNewTransfers(batch, { client });
          })
        : await ledger.createNewTransfers(batch);
      expect(results).toBeNull();
      for (const t of fresh) expect(await ledger.getTransfer(t.id)).toBeUndefined();
      if (useClient) expect(await ledger.getTransfer(callerRow)).toBeDefined();
      const after = await ledger.balance({ assetId: ETH, name: DEP });
      expect(after.debitsPosted - before.debitsPosted).toBe(useClient ? 1n : 0n);
    }
    expect(await credited("user:n3")).toBe(7n);
    expect(await credited("user:n4")).toBe(0n);
  });
});

describe("caller's transaction, freeze, queries", () => {
  it("places a hold inside the caller's transaction and rolls back with it", async () => {
    await fund("user:t", 20n);
    const id = randomUUID();
    await expect(
      withTransaction(ctx.db.pool, async (client) => {
        await ledger.hold(
          { id, assetId: ETH, debit: "user:t", credit: HOT, amount: 20n, kind: "withdrawal" },
          { client },
        );
        expect((await ledger.balance({ assetId: ETH, name: "user:t" }, { client })).available).toBe(
          0n,
        );
        throw new Error("caller aborts");
      }),
    ).rejects.toThrow("caller aborts");
    expect(await ledger.getTransfer(id)).toBeUndefined();
    expect((await ledger.balance({ assetId: ETH, name: "user:t" })).available).toBe(20n);
  });

  it("frozen accounts accept no debits but still receive credits", async () => {
    await fund("user:f", 20n);
    await ledger.freeze({ assetId: ETH, name: "user:f" });
    await expectCode(
      ledger.transfer({
        id: randomUUID(),
        assetId: ETH,
        debit: "user:f",
        credit: HOT,
        amount: 1n,
        kind: "withdrawal",
      }),
      "LEDGER_ACCOUNT_FROZEN",
    );
    await fund("user:f", 1n);
    await ledger.unfreeze({ assetId: ETH, name: "user:f" });
    await ledger.transfer({
      id: randomUUID(),
      assetId: ETH,
      debit: "user:f",
      credit: HOT,
      amount: 1n,
      kind: "withdrawal",
    });
    expect((await ledger.balance({ assetId: ETH, name: "user:f" })).available).toBe(20n);
  });

  it("answers balance at a past transfer and pages an account's transfers", async () => {
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const id = randomUUID();
      ids.push(id);
      await ledger.transfer({
        id,
        assetId: ETH,
        debit: DEP,
        credit: "user:p",
        amount: BigInt(i),
        kind: "deposit",
      });
    }
    const at = await ledger.balanceAt(
      { assetId: ETH, name: "user:p" },
      { transferId: ids[2] as string },
    );
    expect(at.creditsPosted).toBe(6n);
    const now = await ledger.balanceAt(
      { assetId: ETH, name: "user:p" },
      { time: new Date(Date.now() + 60_000) },
    );
    expect(now.creditsPosted).toBe(15n);
    const p1 = await ledger.accountTransfers({ assetId: ETH, name: "user:p" }, { limit: 2 });
    expect(p1.transfers.map((t) => t.amount)).toEqual([5n, 4n]);
    const p2 = await ledger.accountTransfers(
      { assetId: ETH, name: "user:p" },
      { limit: 2, cursor: p1.nextCursor as string },
    );
    const p3 = await ledger.accountTransfers(
      { assetId: ETH, name: "user:p" },
      { limit: 2, cursor: p2.nextCursor as string },
    );
    expect([...p2.transfers, ...p3.transfers].map((t) => t.amount)).toEqual([3n, 2n, 1n]);
    expect(p3.nextCursor).toBeNull();
  });
});

describe("check", () => {
  it("passes on a consistent ledger and finds a tampered balance", async () => {
    await fund("user:tampered", 7n); // its own account: the case holds run alone too
    expect((await ledger.check()).problems).toEqual([]);
    const tamper = (by: number) =>
      ctx.db.pool.query(
        "UPDATE ledger.accounts SET credits_posted = credits_posted + $2 WHERE name = 'user:tampered' AND asset_id = $1",
        [ETH, by],
      );
    await tamper(1);
    const report = await ledger.check();
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.type).sort()).toEqual([
      "account_balance_mismatch",
      "unbalanced_asset",
    ]);
    await tamper(-1);
  });

  // Each violation is planted with balances kept consistent, so only the new checks can see it.
  it("finds a post larger than its hold, a hold resolved twice, and a resolution of no hold", async () => {
    const q = (sql: string, params: unknown[]) => ctx.db.pool.query(sql, params);
    const types = async () => (await ledger.check()).problems.map((p) => p.type);
    await fund("user:chk", 100n);
    const place = async () => {
      const id = randomUUID();
      await ledger.hold({
        id,
        assetId: ETH,
        debit: "user:chk",
        credit: HOT,
        amount: 10n,
        kind: "withdrawal",
      });
      return id;
    };
    // partial and full posts, a void and an expiry: a clean ledger reports nothing
    const h1 = await place();
    const p1 = randomUUID();
    await ledger.postPending({ id: p1, pendingId: h1 });
    await ledger.postPending({ id: randomUUID(), pendingId: await place(), amount: 4n });
    const h2 = await place();
    await ledger.voidPending({ id: randomUUID(), pendingId: h2 });
    const h3 = await place();
    await q("UPDATE ledger.holds SET timeout_at = now() WHERE transfer_id = $1", [h3]);
    expect(await ledger.expireHolds()).toBeGreaterThanOrEqual(1);
    expect(await types()).toEqual([]);

    // the post of h1 made 15 out of a hold of 10, both accounts moved to match
    const bump = `UPDATE ledger.accounts SET debits_posted = debits_posted + $3
      WHERE asset_id = $1 AND name = $2`;
    const bumpCredit = `UPDATE ledger.accounts SET credits_posted = credits_posted + $3
      WHERE asset_id = $1 AND name = $2`;
    const overpost = async (by: bigint) => {
      await q(
        "UPDATE ledger.transfers SET amount = amount + $2, posted_delta = posted_delta + $2 WHERE id = $1",
        [p1, by],
      );
      await q(bump, [ETH, "user:chk", by]);
      await q(bumpCredit, [ETH, HOT, by]);
    };
    await overpost(5n);
    const report = await ledger.check();
    expect(report.problems).toEqual([
      {
        type: "post_exceeds_hold",
        assetId: ETH,
        account: "user:chk",
        detail: `hold ${h1} of 10 posted 15`,
      },
    ]);
    await overpost(-5n);

    // a second resolution of h2 (voided already), with no effect on any balance
    const plant = (id: string, pendingId: string) =>
      q(
        `INSERT INTO ledger.transfers (id, asset_id, debit_account_id, credit_account_id, amount,
           type, pending_id, posted_delta, pending_delta, kind)
         SELECT $1, asset_id, debit_account_id, credit_account_id, 0, 'void', $2, 0, 0, kind
         FROM ledger.transfers WHERE id = $3`,
        [id, pendingId, h2],
      );
    const twice = randomUUID();
    await plant(twice, h2);
    expect((await ledger.check()).problems).toEqual([
      {
        type: "hold_resolved_twice",
        assetId: ETH,
        account: "user:chk",
        detail: `hold ${h2} has 2 resolutions (post, void or expire)`,
      },
    ]);
    // a resolution naming a transfer that is no hold (here a deposit credit)
    const orphan = randomUUID();
    const single = await q(
      "SELECT id::text FROM ledger.transfers WHERE type = 'single' AND asset_id = $1 LIMIT 1",
      [ETH],
    );
    const notHold = (single.rows[0] as { id: string }).id;
    await plant(orphan, notHold);
    expect((await types()).sort()).toEqual(["hold_resolved_twice", "resolution_without_hold"]);
    await q("DELETE FROM ledger.transfers WHERE id = ANY($1::uuid[])", [[twice, orphan]]);
    expect(await types()).toEqual([]);
  });
});

describe("assets", () => {
  it("a listed token's corrected decimals and symbol replace the stored ones (the reconciliation report reads them)", async () => {
    // A 6-decimals token first listed with 18 (its amounts in every report 10^12 too small),
    // then corrected in the config: the config is the truth at run time (and checked against the
    // chain at start, ops/tokenConfig.ts), so the stored asset follows it.
    const token = `0x${"c6".repeat(20)}` as const;
    const chain = ctx.config.chains[0]!;
    const listed = (decimals: number, symbol: string) => [
      { ...chain, tokens: [{ address: token, symbol, decimals }] },
    ];
    await ledger.ensureAssetsFromConfig(listed(18, "USDC.e"));
    await ledger.ensureAssetsFromConfig(listed(6, "USDC"));
    const r = await ctx.db.pool.query<{ symbol: string; decimals: number }>(
      "SELECT symbol, decimals FROM ledger.asset_list WHERE id = $1",
      [`${chain.chainId}:${token}`],
    );
    expect(r.rows).toEqual([{ symbol: "USDC", decimals: 6 }]);
    const again = await ledger.ensureAsset({
      chainId: chain.chainId,
      token,
      symbol: "USDC",
      decimals: 6,
    });
    expect(again).toMatchObject({ symbol: "USDC", decimals: 6 });
  });
});
