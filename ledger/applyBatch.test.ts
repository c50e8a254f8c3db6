import { describe, expect, it } from "vitest";
import {
  type AccountState,
  accountKey,
  applyBatch,
  type BatchInput,
  type BatchState,
  firstDifference,
  type HoldState,
  type TransferRow,
} from "./applyBatch.js";
import { transferId } from "./transferId.js";

const A = "31337:0x0000000000000000000000000000000000000000";
const HOT = `custody:hot:0x${"11".repeat(20)}`;

function account(id: bigint, name: string, credits = 0n): AccountState {
  const user = name.startsWith("user:");
  return {
    id,
    assetId: A,
    name,
    debitsMustNotExceedCredits: user,
    creditsMustNotExceedDebits: false,
    frozen: false,
    debitsPending: 0n,
    debitsPosted: 0n,
    creditsPending: 0n,
    creditsPosted: credits,
  };
}

function state(extra: Partial<BatchState> = {}): BatchState {
  const accounts = new Map<string, AccountState>();
  for (const a of [
    account(1n, "custody:deposits"),
    account(2n, "user:1", 100n),
    account(3n, "user:2"),
    account(4n, HOT),
  ])
    accounts.set(accountKey(A, a.name), a);
  return {
    knownAssets: new Set([A]),
    accounts,
    holds: new Map(),
    existing: new Map(),
    failed: new Map(),
    ...extra,
  };
}

const id = (n: string) => transferId(`unit:${n}`);
const t = (n: string, debit: string, credit: string, amount: bigint, more: object = {}) =>
  ({ id: id(n), assetId: A, debit, credit, amount, kind: "manual", ...more }) as BatchInput;
/** A 10-unit withdrawal hold `h` from user:1 to the hot wallet. */
const hold = (s: HoldState["state"], timedOut = false): HoldState => ({
  transferId: id("h"),
  assetId: A,
  debitAccountId: 2n,
  creditAccountId: 4n,
  amount: 10n,
  kind: "withdrawal",
  state: s,
  timedOut,
});
const codes = (r: ReturnType<typeof applyBatch>) =>
  r.results.map((x) => (x.status === "failed" ? x.code : x.status));

describe("applyBatch", () => {
  it("applies in order, so a later transfer sees an earlier one's effect", () => {
    const out = applyBatch(
      [t("a", "user:1", "user:2", 100n), t("b", "user:2", HOT, 60n), t("c", "user:2", HOT, 41n)],
      state(),
    );
    expect(codes(out)).toEqual(["created", "created", "LEDGER_INSUFFICIENT_BALANCE"]);
    expect(out.inserts.map((r) => r.id)).toEqual([id("a"), id("b")]);
    const user2 = out.changed.find((a) => a.name === "user:2");
    expect(user2).toMatchObject({ creditsPosted: 100n, debitsPosted: 60n });
    expect(out.failures).toEqual([
      { id: id("c"), code: "LEDGER_INSUFFICIENT_BALANCE", detail: expect.any(String) },
    ]);
  });

  it("nets a batch into one new balance per changed account, in id order", () => {
    const out = applyBatch(
      [t("a", "custody:deposits", "user:2", 5n), t("b", "custody:deposits", "user:2", 7n)],
      state(),
    );
    expect(out.changed.map((a) => [a.id, a.debitsPosted, a.creditsPosted])).toEqual([
      [1n, 12n, 0n],
      [3n, 0n, 12n],
    ]);
  });

  it("deduplicates an id repeated within a batch, and names the field of a mismatch", () => {
    const out = applyBatch(
      [
        t("a", "custody:deposits", "user:2", 5n),
        t("a", "custody:deposits", "user:2", 5n),
        t("a", "custody:deposits", "user:2", 6n),
      ],
      state(),
    );
    expect(codes(out)).toEqual(["created", "exists", "LEDGER_TRANSFER_EXISTS_MISMATCH"]);
    expect(out.results[2]).toMatchObject({ field: "amount" });
    expect(out.inserts).toHaveLength(1);
  });

  it("takes a hold retried with another timeout (or none) for another request", () => {
    const h = (timeoutSeconds?: number) =>
      t("h", "user:1", HOT, 10n, {
        type: "pending",
        ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      });
    const out = applyBatch([h(3600), h(3600), h(60), h()], state());
    expect(codes(out)).toEqual([
      "created",
      "exists",
      "LEDGER_TRANSFER_EXISTS_MISMATCH",
      "LEDGER_TRANSFER_EXISTS_MISMATCH",
    ]);
    expect(out.results.slice(2)).toMatchObject([
      { field: "timeoutSeconds" },
      { field: "timeoutSeconds" },
    ]);
    // the same against a stored hold (read back with the timeout it was placed with)
    const { postedDelta: _p, pendingDelta: _d, ...stored } = out.inserts[0] as TransferRow;
    const again = applyBatch([h(3600), h(60), h()], {
      ...state(),
      existing: new Map([[id("h"), stored]]),
    });
    expect(codes(again)).toEqual([
      "exists",
      "LEDGER_TRANSFER_EXISTS_MISMATCH",
      "LEDGER_TRANSFER_EXISTS_MISMATCH",
    ]);
    expect(again.inserts).toEqual([]);
  });

  it("returns a stored failure for a failed id even when it would now succeed", () => {
    const out = applyBatch([t("a", "user:1", HOT, 1n)], {
      ...state(),
      failed: new Map([[id("a"), { code: "LEDGER_INSUFFICIENT_BALANCE" as const, detail: null }]]),
    });
    expect(codes(out)).toEqual(["LEDGER_INSUFFICIENT_BALANCE"]);
    expect(out.inserts).toEqual([]);
    expect(out.failures).toEqual([]); // already stored
  });

  it("rolls back a whole linked chain when one member fails", () => {
    const out = applyBatch(
      [
        t("a", "custody:deposits", "user:2", 5n, { linked: true }),
        t("b", "user:2", HOT, 5n, { linked: true }),
        t("c", "user:1", HOT, 1000n),
        t("d", "custody:deposits", "user:2", 1n),
      ],
      state(),
    );
    expect(codes(out)).toEqual([
      "LEDGER_LINKED_EVENT_FAILED",
      "LEDGER_LINKED_EVENT_FAILED",
      "LEDGER_INSUFFICIENT_BALANCE",
      "created",
    ]);
    expect(out.inserts.map((r) => r.id)).toEqual([id("d")]);
    expect(out.changed.find((a) => a.name === "user:2")?.creditsPosted).toBe(1n);
    expect(out.changed.find((a) => a.name === "user:1")).toBeUndefined();
  });

  it("fails a linked chain left open at the end of the batch", () => {
    const out = applyBatch([t("a", "custody:deposits", "user:2", 5n, { linked: true })], state());
    expect(out.results[0]).toMatchObject({ code: "LEDGER_INVALID_TRANSFER", field: "linked" });
    expect(out.inserts).toEqual([]);
    expect(out.changed).toEqual([]);
  });

  it("holds, then posts partially within one batch, releasing the rest", () => {
    const out = applyBatch(
      [
        t("h", "user:1", HOT, 80n, { type: "pending" }),
        t("x", "user:1", HOT, 21n),
        { type: "post", id: id("p"), pendingId: id("h"), amount: 50n },
      ],
      state(),
    );
    expect(codes(out)).toEqual(["created", "LEDGER_INSUFFICIENT_BALANCE", "created"]);
    const user1 = out.changed.find((a) => a.name === "user:1");
    expect(user1).toMatchObject({ debitsPending: 0n, debitsPosted: 50n, creditsPosted: 100n });
    expect(out.newHolds[0]).toMatchObject({ transferId: id("h"), state: "posted" });
    const post = out.inserts.find((r) => r.id === id("p"));
    expect(post).toMatchObject({ type: "post", amount: 50n, postedDelta: 50n, pendingDelta: -80n });
  });

  it("refuses to resolve a hold twice, beyond its amount, or after its timeout", () => {
    const post = (n: string, amount?: bigint): BatchInput => ({
      type: "post",
      id: id(n),
      pendingId: id("h"),
      ...(amount !== undefined ? { amount } : {}),
    });
    const run = (h: HoldState, input: BatchInput) =>
      codes(applyBatch([input], state({ holds: new Map([[id("h"), h]]) })))[0];
    expect(run(hold("posted"), post("1"))).toBe("LEDGER_PENDING_ALREADY_POSTED");
    expect(run(hold("voided"), post("2"))).toBe("LEDGER_PENDING_ALREADY_VOIDED");
    expect(run(hold("expired"), post("3"))).toBe("LEDGER_PENDING_EXPIRED");
    expect(run(hold("pending", true), post("4"))).toBe("LEDGER_PENDING_EXPIRED");
    expect(run(hold("pending"), post("5", 11n))).toBe("LEDGER_EXCEEDS_PENDING_AMOUNT");
    expect(run(hold("pending", true), { type: "expire", id: id("6"), pendingId: id("h") })).toBe(
      "created",
    );
    expect(run(hold("pending"), post("7"))).toBe("created");
  });

  it("refuses a chain reference on another chain than its asset's, single or posting a hold", () => {
    const ref = (chainId: number) => ({ chainId, txHash: `0x${"ab".repeat(32)}`, position: "tx" });
    const out = applyBatch(
      [
        t("a", "custody:deposits", "user:2", 1n, { kind: "deposit", chainRef: ref(1) }),
        { type: "post", id: id("p1"), pendingId: id("h"), chainRef: ref(10) },
        t("b", "custody:deposits", "user:2", 1n, { kind: "deposit", chainRef: ref(31337) }),
        { type: "post", id: id("p2"), pendingId: id("h"), chainRef: ref(31337) },
      ],
      state({ holds: new Map([[id("h"), hold("pending")]]) }),
    );
    expect(codes(out)).toEqual([
      "LEDGER_INVALID_TRANSFER",
      "LEDGER_INVALID_TRANSFER",
      "created",
      "created",
    ]);
    expect(out.results[0]).toMatchObject({ field: "chainRef" });
    expect(out.results[1]).toMatchObject({ field: "chainRef" });
  });

  it("refuses debits from a frozen account but accepts credits to it", () => {
    const s = state();
    const u1 = s.accounts.get(accountKey(A, "user:1"));
    if (u1) u1.frozen = true;
    const out = applyBatch(
      [t("a", "user:1", HOT, 1n), t("b", "custody:deposits", "user:1", 1n)],
      s,
    );
    expect(codes(out)).toEqual(["LEDGER_ACCOUNT_FROZEN", "created"]);
  });

  it("takes a hold placed again for a reorged payment (heldAgain) on a frozen account; pending only", () => {
    const s = state();
    const u1 = s.accounts.get(accountKey(A, "user:1"));
    if (u1) u1.frozen = true;
    const out = applyBatch(
      [
        t("a", "user:1", HOT, 1n, { type: "pending", heldAgain: true }),
        t("b", "user:1", HOT, 1n, { type: "pending" }),
        t("c", "user:1", HOT, 1n, { heldAgain: true }),
      ],
      s,
    );
    // old code: got LEDGER_ACCOUNT_FROZEN for all three (no heldAgain: a reorged payment's hold refused)
    expect(codes(out)).toEqual(["created", "LEDGER_ACCOUNT_FROZEN", "LEDGER_INVALID_TRANSFER"]);
  });

  it("validates before touching state", () => {
    const out = applyBatch(
      [
        { ...t("a", "custody:deposits", "user:2", 0n) },
        t("b", "custody:deposits", "custody:deposits", 1n),
        t("c", "custody:deposits", "nobody", 1n),
        { ...t("d", "custody:deposits", "user:2", 1n), assetId: "1:0xdead" } as BatchInput,
        { ...t("e", "custody:deposits", "user:2", 1n), id: "not-a-uuid" } as BatchInput,
      ],
      state(),
    );
    expect(codes(out)).toEqual([
      "LEDGER_INVALID_TRANSFER",
      "LEDGER_INVALID_TRANSFER",
      "LEDGER_INVALID_TRANSFER",
      "LEDGER_UNKNOWN_ASSET",
      "LEDGER_INVALID_TRANSFER",
    ]);
    expect(out.changed).toEqual([]);
    expect(out.failures).toEqual([]); // input errors are not sticky
  });
});

describe("firstDifference", () => {
  it("names the first differing field", () => {
    const base = {
      id: id("x"),
      type: "single" as const,
      assetId: A,
      debitAccountId: 1n,
      creditAccountId: 2n,
      amount: 5n,
      pendingId: null,
      kind: "deposit" as const,
      chainRef: { chainId: 1, txHash: "0xab", position: "tx" },
      reversesId: null,
      memo: null,
      timeoutSeconds: null,
    };
    expect(firstDifference(base, { ...base })).toBeUndefined();
    expect(firstDifference(base, { ...base, kind: "manual" })).toBe("kind");
    expect(
      firstDifference(base, { ...base, chainRef: { ...base.chainRef, position: "log:1" } }),
    ).toBe("chainRef");
    expect(firstDifference(base, { ...base, creditAccountId: 3n })).toBe("credit");
    expect(firstDifference(base, { ...base, timeoutSeconds: 60 })).toBe("timeoutSeconds");
  });
});
