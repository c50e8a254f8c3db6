import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { getTxRequest, requestTransaction, type TxRequestInput } from "./requests.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const base: TxRequestInput = {
  id: "withdrawal:w1",
  chainId: 31337,
  from: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
  to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  value: 123456789012345678901234567890n,
  kind: "withdrawal",
  refId: "w1",
};

describe("requestTransaction", () => {
  it("stores a pending request with lowercase addresses and exact amounts, once", async () => {
    const first = await withTransaction(db.pool, (c) => requestTransaction(c, base));
    const again = await withTransaction(db.pool, (c) => requestTransaction(c, base));
    expect(first).toEqual({ id: "withdrawal:w1", created: true });
    expect(again).toEqual({ id: "withdrawal:w1", created: false });
    const row = await getTxRequest(db.pool, "withdrawal:w1");
    expect(row?.status).toBe("pending");
    expect(row?.from).toBe("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    expect(row?.value).toBe(123456789012345678901234567890n);
    expect(row?.nonce).toBeNull();
  });

  it("rejects a reused id with different contents and leaves the row unchanged", async () => {
    await expect(
      withTransaction(db.pool, (c) => requestTransaction(c, { ...base, value: 1n })),
    ).rejects.toMatchObject({ code: "SIGNER_REQUEST_CONFLICT", meta: { fields: ["value"] } });
    expect((await getTxRequest(db.pool, "withdrawal:w1"))?.value).toBe(
      123456789012345678901234567890n,
    );
  });

  it("rejects bad input before touching the database", async () => {
    const bad: [Partial<TxRequestInput>, string][] = [
      [{ to: "0x1234" }, "to"],
      [{ to: "0x70997970c51812dc3a010c7d01b50e0d17dc79C8" }, "to"],
      [{ value: -1n }, "value"],
      [{ data: "0xabc" }, "data"],
      [{ kind: "Withdrawal" }, "kind"],
      [{ gasLimit: 100n }, "gasLimit"],
    ];
    for (const [patch, field] of bad) {
      await expect(
        withTransaction(db.pool, (c) => requestTransaction(c, { ...base, id: "x", ...patch })),
      ).rejects.toMatchObject({ code: "SIGNER_INVALID_REQUEST", meta: { field } });
    }
    expect(await getTxRequest(db.pool, "x")).toBeUndefined();
  });

  it("commits with the caller's transaction and rolls back with it", async () => {
    await expect(
      withTransaction(db.pool, async (c) => {
        await requestTransaction(c, { ...base, id: "rolled-back" });
        throw new Error("caller failed");
      }),
    ).rejects.toThrow("caller failed");
    expect(await getTxRequest(db.pool, "rolled-back")).toBeUndefined();
  });
});
