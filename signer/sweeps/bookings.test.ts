import { describe, expect, it } from "vitest";
import { transferId } from "../../ledger/index.js";
import {
  coldMoveHold,
  coldMoveTokenFee,
  coldMoveTokenFeeUnbooking,
  coldMoveTransferIds,
  coldMoveUnbooking,
  gasTransfer,
  gasUnbooking,
  sweepTransfer,
  sweepUnbooking,
} from "./bookings.js";

// Names and fields spelled out as they are booked in production databases: they must not move.
const HOT = "0x00000000000000000000000000000000000000AA";
const hot = HOT.toLowerCase();
const ADDR = "0x00000000000000000000000000000000000000BB";
const addr = ADDR.toLowerCase();
const TX = "0xABCDEF0000000000000000000000000000000000000000000000000000000001";
const tx = TX.toLowerCase();
const native = "0x0000000000000000000000000000000000000000";

describe("sweep bookings", () => {
  it("books a sweep and its gas under the generation's names", () => {
    const sweep = { chainId: 31337, sweepId: "s1", hotWallet: HOT, address: ADDR, asset: native };
    expect(sweepTransfer({ ...sweep, amount: 5n, chainRef: undefined, generation: 2 })).toEqual({
      id: transferId(`sweep:s1:${addr}:${native}:g2`),
      assetId: `31337:${native}`,
      debit: `custody:hot:${hot}`,
      credit: "custody:deposits",
      amount: 5n,
      kind: "sweep",
      memo: `sweep s1 from ${addr}`,
    });
    expect(
      gasTransfer({ chainId: 31337, txHash: TX, hotWallet: HOT, fee: 7n, memo: "gas of sweep s1" }),
    ).toStrictEqual({
      id: transferId(`fee:31337:${tx}`),
      assetId: `31337:${native}`,
      debit: "fees:gas",
      credit: `custody:hot:${hot}`,
      amount: 7n,
      kind: "fee",
      chainRef: { chainId: 31337, txHash: tx, position: "fee" },
      memo: "gas of sweep s1",
    });
  });

  it("unbooks both with compensations that reverse the booked ids", () => {
    const booked = { chainId: 31337, sweepId: "s1", hotWallet: HOT, generation: 1 };
    expect(sweepUnbooking({ ...booked, address: ADDR, asset: native, amount: 5n })).toStrictEqual({
      id: transferId(`sweep:s1:${addr}:${native}:g1:unbook`),
      reverses: transferId(`sweep:s1:${addr}:${native}:g1`),
      assetId: `31337:${native}`,
      debit: "custody:deposits",
      credit: `custody:hot:${hot}`,
      amount: 5n,
      kind: "compensation",
      memo: "sweep s1 reorged out after booking: reversed until it mines again",
    });
    expect(gasUnbooking({ ...booked, of: "sweep s1", txHash: TX, fee: 7n })).toStrictEqual({
      id: transferId(`fee:31337:${tx}:g1:unbook`),
      reverses: transferId(`fee:31337:${tx}:g1`),
      assetId: `31337:${native}`,
      debit: `custody:hot:${hot}`,
      credit: "fees:gas",
      amount: 7n,
      kind: "compensation",
      memo: "gas of sweep s1 reorged out after booking",
    });
  });
});

describe("cold move bookings", () => {
  const COLD = "0x000000000000000000000000000000000000C01D";
  const cold = COLD.toLowerCase();
  const move = {
    chainId: 31337,
    moveId: "m1",
    hotWallet: HOT,
    coldAddress: COLD,
    asset: native,
    amount: 9n,
  };

  it("keeps the names booked before hold generations at generation 0", () => {
    expect(coldMoveTransferIds("m1", 0)).toStrictEqual({
      hold: transferId("cold_move:m1"),
      post: transferId("cold_move:m1:post"),
      void: transferId("cold_move:m1:void"),
      unbook: transferId("cold_move:m1:post:unbook"),
    });
    expect(coldMoveHold({ ...move, generation: 0 })).toStrictEqual({
      type: "pending",
      id: transferId("cold_move:m1"),
      assetId: `31337:${native}`,
      debit: `custody:cold:${cold}`,
      credit: `custody:hot:${hot}`,
      amount: 9n,
      kind: "cold_move",
      memo: "cold move m1",
    });
  });

  it("reverses a generation's post and holds again under the next generation's names", () => {
    expect(coldMoveUnbooking({ ...move, generation: 1 })).toStrictEqual({
      id: transferId("cold_move:m1:post:g1:unbook"),
      reverses: transferId("cold_move:m1:post:g1"),
      assetId: `31337:${native}`,
      debit: `custody:hot:${hot}`,
      credit: `custody:cold:${cold}`,
      amount: 9n,
      kind: "compensation",
      memo: "cold move m1 reorged out after booking: reversed until it mines again",
    });
    expect(coldMoveHold({ ...move, generation: 2 })).toMatchObject({
      type: "pending",
      id: transferId("cold_move:m1:hold:g2"),
      debit: `custody:cold:${cold}`,
      credit: `custody:hot:${hot}`,
      amount: 9n,
    });
    expect(coldMoveTransferIds("m1", 2)).toMatchObject({
      post: transferId("cold_move:m1:post:g2"),
      void: transferId("cold_move:m1:void:g2"),
    });
  });

  it("books a token's fee on a cold move as an expense against its Transfer, reversed with the post", () => {
    const fee = { ...move, asset: addr, index: 1, fee: 2n };
    expect(
      coldMoveTokenFee({
        ...fee,
        generation: 0,
        chainRef: { chainId: 31337, txHash: tx, position: "transfer:2" },
      }),
    ).toStrictEqual({
      id: transferId("cold_move:m1:token_fee:1"),
      assetId: `31337:${addr}`,
      debit: "fees:gas",
      credit: `custody:hot:${hot}`,
      amount: 2n,
      kind: "cold_move",
      chainRef: { chainId: 31337, txHash: tx, position: "transfer:2" },
      memo: "fee the token took on cold move m1",
    });
    expect(coldMoveTokenFeeUnbooking({ ...fee, generation: 1 })).toStrictEqual({
      id: transferId("cold_move:m1:token_fee:1:g1:unbook"),
      reverses: transferId("cold_move:m1:token_fee:1:g1"),
      assetId: `31337:${addr}`,
      debit: `custody:hot:${hot}`,
      credit: "fees:gas",
      amount: 2n,
      kind: "compensation",
      memo: "cold move m1 reorged out after booking: the token's fee reversed",
    });
  });
});
