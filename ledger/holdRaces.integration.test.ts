/**
 * Holds raced by many connections, through every path (own transaction, shared transactions, the
 * caller's transaction):
 * - each hold is resolved exactly once, a post never exceeds its hold, a retried id with another
 *   amount is never taken as the same, and the check passes;
 * - a batch that posts a hold reads the hold (to lock its accounts), locks, then reads it again: a
 *   hold committed in between names accounts the batch did not lock; the batch is redone, never
 *   failed whole (on the shared path that would reject every other caller's transfer in it);
 * - the same hold submitted at once by several callers (a retried withdrawal request): one places
 *   it, the others answer `exists`; none gets a database error;
 * - a hold retried with another timeout (or none, or one where it had none) is another request:
 *   refused, on every path, and the hold keeps the timeout it was placed with.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool, withTransaction } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { transferId } from "./transferId.js";
import type { NewTransfer, TransferInput, TransferResult } from "./types.js";

const ETH = "31337:0x0000000000000000000000000000000000000000";
const HOT = `custody:hot:0x${"33".repeat(20)}`;
const HOT_RETRY = `custody:hot:0x${"66".repeat(20)}`;
let ctx: TestContext;
let pool: Pool;
let ledger: Ledger;

beforeAll(async () => {
  ctx = await createTestContext();
  pool = createPool(ctx.db.url, { max: 24 });
  ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
});
afterAll(async () => {
  await ledger?.close();
  await pool?.end();
  await ctx?.cleanup();
});

type Path = "own" | "shared" | "caller";
async function submit(path: Path, t: TransferInput): Promise<TransferResult> {
  if (path === "own") return (await ledger.createTransfers([t]))[0] as TransferResult;
  if (path === "caller")
    return withTransaction(
      pool,
      async (client) => (await ledger.createTransfers([t], { client }))[0] as TransferResult,
    );
  return ledger.transfer(t).then(
    (status) => ({ id: t.id, status }),
    (e: {
      code: TransferResult extends { code: infer C } ? C : never;
      meta: { field?: string };
    }) => ({
      id: t.id,
      status: "failed" as const,
      code: e.code,
      ...(e.meta.field !== undefined ? { field: e.meta.field } : {}),
    }),
  );
}

/** Credits each user 100 (one deposit each, one batch). */
async function fund(...users: string[]): Promise<void> {
  await ledger.createTransfers(
    users.map((u) => ({
      id: randomUUID(),
      assetId: ETH,
      debit: "custody:deposits",
      credit: u,
      amount: 100n,
      kind: "deposit" as const,
    })),
  );
}

describe("hold races", () => {
  it("post, post again, void and a mismatched retry of one hold at once: exactly one resolution", async () => {
    const paths: Path[] = ["own", "shared", "caller"];
    for (let round = 0; round < 40; round++) {
      const user = `user:race-${round}`;
      await fund(user);
      const hold = randomUUID();
      await ledger.hold({
        id: hold,
        assetId: ETH,
        debit: user,
        credit: HOT,
        amount: 60n,
        kind: "withdrawal",
      });
      const p1 = randomUUID();
      const contenders: TransferInput[] = [
        { type: "post", id: p1, pendingId: hold },
        { type: "post", id: p1, pendingId: hold, amount: 50n },
        { type: "post", id: p1, pendingId: hold }, // the same retry again: never a second posting
        { type: "post", id: randomUUID(), pendingId: hold, amount: 30n },
        { type: "void", id: randomUUID(), pendingId: hold },
        { type: "post", id: randomUUID(), pendingId: hold, amount: 61n },
        // a second hold and a spend competing for what the first leaves
        {
          type: "pending",
          id: randomUUID(),
          assetId: ETH,
          debit: user,
          credit: HOT,
          amount: 60n,
          kind: "withdrawal",
        },
        {
          id: randomUUID(),
          assetId: ETH,
          debit: user,
          credit: HOT,
          amount: 40n,
          kind: "withdrawal",
        },
      ];
      const order = contenders.map((t, i) => ({ t, path: paths[(i + round) % 3] as Path }));
      order.sort(() => Math.random() - 0.5);
      const results = await Promise.all(order.map(({ t, path }) => submit(path, t)));
      const resolvedBy = results.filter(
        (r, i) =>
          r.status === "created" &&
          order[i]?.t.type !== "pending" &&
          "pendingId" in (order[i]?.t ?? {}),
      );
      expect(resolvedBy, JSON.stringify(results)).toHaveLength(1);
      // only the identical retry of p1 may answer exists, and only when p1 won
      const exists = results.filter((r) => r.status === "exists");
      expect(exists.length).toBeLessThanOrEqual(1);
      for (const r of exists) expect(r.id).toBe(p1);
      const b = await ledger.balance({ assetId: ETH, name: user });
      expect(b.available).toBeGreaterThanOrEqual(0n);
      expect(b.debitsPending + b.debitsPosted).toBeLessThanOrEqual(100n);
    }
    const report = await ledger.check();
    expect(report.problems).toEqual([]);
  }, 120_000);
});

describe("a hold committed while a batch resolving it waits for its locks", () => {
  it("neither throws nor takes the batch's other transfers down", async () => {
    const errors: string[] = [];
    for (let round = 0; round < 60; round++) {
      const a = `user:la-${round}`;
      const b = `user:lb-${round}`;
      await fund(a, b);
      const hold = randomUUID();
      const t1 = ledger.createTransfers([
        {
          type: "pending",
          id: hold,
          assetId: ETH,
          debit: a,
          credit: "custody:hot:0x" + "44".repeat(20),
          amount: 10n,
          kind: "withdrawal",
        },
        {
          id: randomUUID(),
          assetId: ETH,
          debit: b,
          credit: "custody:hot:0x" + "55".repeat(20),
          amount: 1n,
          kind: "withdrawal",
        },
      ]);
      await new Promise((r) => setTimeout(r, round % 5));
      const t2: Promise<TransferResult[]> = ledger
        .createTransfers([
          { type: "post", id: randomUUID(), pendingId: hold },
          {
            id: randomUUID(),
            assetId: ETH,
            debit: b,
            credit: "custody:hot:0x" + "55".repeat(20),
            amount: 1n,
            kind: "withdrawal",
          },
        ])
        .catch((e: Error) => {
          errors.push(e.message);
          return [];
        });
      const [, resolved] = await Promise.all([t1, t2]);
      if (resolved.length > 0) {
        // the post either ran before the hold existed or posted it; the other transfer stands
        expect(["created", "LEDGER_PENDING_NOT_FOUND"]).toContain(
          resolved[0]?.status === "failed" ? resolved[0].code : resolved[0]?.status,
        );
        expect(resolved[1]?.status).toBe("created");
      }
    }
    expect(errors).toEqual([]);
    expect((await ledger.check()).problems).toEqual([]);
  }, 120_000);
});

describe("a hold retried concurrently", () => {
  it("is placed once and answered `exists` to every other caller", async () => {
    const errors: string[] = [];
    for (let round = 0; round < 30; round++) {
      const user = `user:retry-${round}`;
      await fund(user);
      const hold: TransferInput = {
        type: "pending",
        id: randomUUID(),
        assetId: ETH,
        debit: user,
        credit: HOT_RETRY,
        amount: 10n,
        kind: "withdrawal",
      };
      const statuses = await Promise.all(
        Array.from({ length: 6 }, () =>
          ledger.createTransfers([hold]).then(
            (r) => r[0]?.status,
            (e: Error) => {
              errors.push(e.message);
              return "error";
            },
          ),
        ),
      );
      expect(statuses.filter((s) => s === "created")).toHaveLength(1);
      const b = await ledger.balance({ assetId: ETH, name: user });
      expect(b.debitsPending).toBe(10n);
    }
    expect(errors).toEqual([]);
    expect((await ledger.check()).problems).toEqual([]);
  }, 120_000);

  it("on the shared path, never takes another caller's transfer down with it", async () => {
    const rejected: string[] = [];
    for (let round = 0; round < 30; round++) {
      const user = `user:shared-retry-${round}`;
      const other = `user:shared-other-${round}`;
      await fund(user, other);
      const hold = {
        id: randomUUID(),
        assetId: ETH,
        debit: user,
        credit: HOT_RETRY,
        amount: 10n,
        kind: "withdrawal" as const,
      };
      const spend = () =>
        ledger.transfer({
          id: randomUUID(),
          assetId: ETH,
          debit: other,
          credit: HOT_RETRY,
          amount: 1n,
          kind: "withdrawal",
        });
      // one lane takes a spend, the other the hold; the retry and more spends share the next batch
      const calls = [
        spend(),
        ledger.hold(hold),
        ledger.hold(hold),
        spend(),
        spend(),
        ledger.hold(hold),
        spend(),
      ];
      const outcomes = await Promise.allSettled(calls);
      outcomes.forEach((o, i) => {
        const who = [0, 3, 4, 6].includes(i) ? "spend" : "hold";
        if (o.status === "rejected") rejected.push(`${who}: ${(o.reason as Error).message}`);
      });
      expect((await ledger.balance({ assetId: ETH, name: user })).debitsPending).toBe(10n);
    }
    expect(rejected).toEqual([]);
  }, 120_000);
});

describe("a hold retried with another timeout", () => {
  it("is refused on every path, naming timeoutSeconds, and the hold keeps its timeout", async () => {
    for (const path of ["own", "shared", "caller"] as Path[]) {
      const user = `user:timeout-${path}`;
      await fund(user);
      const hold = (timeoutSeconds?: number): NewTransfer => ({
        type: "pending",
        id: transferId(`hold-timeout:${user}`),
        assetId: ETH,
        debit: user,
        credit: HOT,
        amount: 10n,
        kind: "withdrawal",
        ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      });
      expect(await submit(path, hold(3600))).toEqual({ id: hold().id, status: "created" });
      expect(await submit(path, hold(3600))).toEqual({ id: hold().id, status: "exists" });
      for (const other of [60, 3601, undefined])
        expect(await submit(path, hold(other)), `${path} ${other}`).toMatchObject({
          status: "failed",
          code: "LEDGER_TRANSFER_EXISTS_MISMATCH",
          field: "timeoutSeconds",
        });
      // and the other way round: a hold placed without a timeout, retried with one
      const open: NewTransfer = { ...hold(), id: randomUUID() };
      expect(await submit(path, open)).toMatchObject({ status: "created" });
      expect(await submit(path, { ...open, timeoutSeconds: 60 })).toMatchObject({
        status: "failed",
        code: "LEDGER_TRANSFER_EXISTS_MISMATCH",
        field: "timeoutSeconds",
      });
      expect(await submit(path, open)).toMatchObject({ status: "exists" });
      const h = await pool.query<{ secs: number }>(
        `SELECT extract(epoch FROM timeout_at - now())::int AS secs FROM ledger.holds WHERE transfer_id = $1`,
        [hold().id],
      );
      expect(h.rows[0]?.secs).toBeGreaterThan(3500);
      expect((await ledger.balance({ assetId: ETH, name: user })).debitsPending).toBe(20n);
    }
    expect((await ledger.check()).problems).toEqual([]);
  });
});
