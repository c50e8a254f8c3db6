import { describe, expect, it } from "vitest";
import { gasBooking, gasReversal, holdSettlement } from "./gasBookings.js";

const hot = "0x00000000000000000000000000000000000000aa";
const tx = "0x1111111111111111111111111111111111111111111111111111111111111111";

describe("gasBooking", () => {
  it("debits fees:gas and credits the hot wallet in the native asset, against the fee fact", () => {
    expect(
      gasBooking({ id: "g", chainId: 31337, hotWallet: hot, txHash: tx, amount: 21n, memo: "m" }),
    ).toStrictEqual({
      id: "g",
      assetId: "31337:0x0000000000000000000000000000000000000000",
      debit: "fees:gas",
      credit: `custody:hot:${hot}`,
      amount: 21n,
      kind: "fee",
      chainRef: { chainId: 31337, txHash: tx, position: "fee" },
      memo: "m",
    });
  });

  it("uses the wallet and tx hash verbatim: callers' names are already in production", () => {
    const t = gasBooking({
      id: "g",
      chainId: 1,
      hotWallet: "0xAbC",
      txHash: "0xDeF",
      amount: 1n,
      memo: "m",
    });
    expect(t.credit).toBe("custody:hot:0xAbC");
    expect(t.chainRef?.txHash).toBe("0xDeF");
  });
});

describe("gasReversal", () => {
  it("mirrors the booking, reverses it, carries no fact, and keeps the caller's kind", () => {
    for (const kind of ["fee", "compensation"] as const) {
      expect(
        gasReversal({
          id: "r",
          reverses: "g",
          chainId: 10,
          hotWallet: hot,
          amount: 21n,
          kind,
          memo: "m",
        }),
      ).toStrictEqual({
        id: "r",
        reverses: "g",
        assetId: "10:0x0000000000000000000000000000000000000000",
        debit: `custody:hot:${hot}`,
        credit: "fees:gas",
        amount: 21n,
        kind,
        memo: "m",
      });
    }
  });
});

describe("holdSettlement", () => {
  const ids = { pendingId: "h", postId: "p", voidId: "v" };
  it("posts against the fact that moved the value", () => {
    const chainRef = { chainId: 1, txHash: tx, position: "transfer:0" };
    expect(holdSettlement({ ...ids, chainRef })).toStrictEqual({
      type: "post",
      id: "p",
      pendingId: "h",
      chainRef,
    });
  });
  it("voids without one", () => {
    expect(holdSettlement({ ...ids, chainRef: undefined })).toStrictEqual({
      type: "void",
      id: "v",
      pendingId: "h",
    });
  });
});
