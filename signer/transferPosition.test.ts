import { encodeFunctionData, erc20Abi, pad, toHex } from "viem";
import { describe, expect, it } from "vitest";
import { feeOnTransfer, transferMovedNothing, transferPosition } from "./transferPosition.js";

const TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
const WALLET = "0x1111111111111111111111111111111111111111";
const TO = "0x2222222222222222222222222222222222222222";
const TOKEN = "0x3333333333333333333333333333333333333333";
const OTHER = "0x4444444444444444444444444444444444444444";
const UNLISTED = "0x5555555555555555555555555555555555555555";

const log = (address: string, from: string, to: string, value: bigint, logIndex: number) => ({
  address,
  topics: [TRANSFER, pad(from as `0x${string}`), pad(to as `0x${string}`)],
  data: pad(toHex(value)),
  logIndex,
});
const transferData = (to: string, amount: bigint) =>
  encodeFunctionData({
    abi: erc20Abi,
    functionName: "transfer",
    args: [to as `0x${string}`, amount],
  });

describe("transferPosition", () => {
  it("is tx for a native transfer and null for a cancel", () => {
    expect(transferPosition({ from: WALLET, to: TO, value: 5n, data: "0x" }, [], [])).toEqual({
      position: "tx",
      logIndex: null,
    });
    expect(
      transferPosition({ from: WALLET, to: WALLET, value: 0n, data: "0x" }, [], []),
    ).toBeNull();
  });

  it("counts the ordinal among listed-token Transfer logs of the tx, not the block-wide index", () => {
    const tx = { from: WALLET, to: TOKEN, value: 0n, data: transferData(TO, 7n) };
    const logs = [
      log(UNLISTED, WALLET, TO, 7n, 40), // not listed: not counted
      log(OTHER, WALLET, TO, 1n, 41), // listed: counted
      log(TOKEN, WALLET, TO, 7n, 42),
    ];
    expect(transferPosition(tx, logs, [OTHER.toUpperCase().replace("0X", "0x")])).toEqual({
      position: "transfer:1",
      logIndex: 42,
    });
    // The withdrawn token counts even when the config does not list it.
    expect(transferPosition(tx, logs, [])).toEqual({ position: "transfer:0", logIndex: 42 });
  });

  it("is null when no log matches recipient and amount, or the call is not transfer()", () => {
    const tx = { from: WALLET, to: TOKEN, value: 0n, data: transferData(TO, 7n) };
    expect(transferPosition(tx, [log(TOKEN, WALLET, TO, 8n, 1)], [])).toBeNull();
    expect(
      transferPosition({ ...tx, data: "0x12345678" }, [log(TOKEN, WALLET, TO, 7n, 1)], []),
    ).toBeNull();
  });
});

describe("feeOnTransfer", () => {
  const COLLECTOR = "0x000000000000000000000000000000000000fee5";
  const tx = { from: WALLET, to: TOKEN, value: 0n, data: transferData(TO, 1_000n) };

  it("places the recipient's Transfer of less than requested and the token's fee Transfers", () => {
    const logs = [
      log(OTHER, WALLET, TO, 5n, 3), // another listed token: counted, not ours
      log(TOKEN, WALLET, TO, 990n, 4),
      log(TOKEN, WALLET, COLLECTOR, 10n, 5),
    ];
    expect(transferPosition(tx, logs, [OTHER])).toBeNull();
    expect(feeOnTransfer(tx, logs, [OTHER])).toEqual({
      received: { position: "transfer:1", logIndex: 4, amount: 990n },
      fees: [{ position: "transfer:2", logIndex: 5, amount: 10n }],
    });
  });

  it("is null when a Transfer carries the whole amount, none reaches the recipient, or for a cancel", () => {
    expect(feeOnTransfer(tx, [log(TOKEN, WALLET, TO, 1_000n, 1)], [])).toBeNull();
    expect(feeOnTransfer(tx, [log(TOKEN, WALLET, COLLECTOR, 10n, 1)], [])).toBeNull();
    expect(feeOnTransfer({ from: WALLET, to: WALLET, value: 0n, data: "0x" }, [], [])).toBeNull();
  });

  it("ignores a Transfer log whose data is not one amount word", () => {
    const logs = [
      { ...log(TOKEN, WALLET, TO, 990n, 1), data: "0x" },
      log(TOKEN, WALLET, TO, 990n, 2),
      log(TOKEN, WALLET, COLLECTOR, 10n, 3),
    ];
    expect(feeOnTransfer(tx, logs, [])).toEqual({
      received: { position: "transfer:1", logIndex: 2, amount: 990n },
      fees: [{ position: "transfer:2", logIndex: 3, amount: 10n }],
    });
  });

  it("reports what the logs say when the token's Transfers do not account for the whole amount", () => {
    // 1,000 requested: 980 to the recipient, 10 logged to the collector, 10 gone without a log
    // (burned). The parts are the logs' own amounts, never made to add up: the caller posts the
    // amount less the logged fees (990) against the recipient's fact (980), so reconciliation
    // names the 10 instead of it vanishing (ops/e2e/withdrawalFeeToken.test.ts).
    expect(
      feeOnTransfer(
        tx,
        [log(TOKEN, WALLET, TO, 980n, 1), log(TOKEN, WALLET, COLLECTOR, 10n, 2)],
        [],
      ),
    ).toEqual({
      received: { position: "transfer:0", logIndex: 1, amount: 980n },
      fees: [{ position: "transfer:1", logIndex: 2, amount: 10n }],
    });
    // No fee logged at all: the recipient's Transfer alone.
    expect(feeOnTransfer(tx, [log(TOKEN, WALLET, TO, 980n, 1)], [])).toEqual({
      received: { position: "transfer:0", logIndex: 1, amount: 980n },
      fees: [],
    });
    // Fees logged beyond the difference (the token took more than the amount): as logged.
    expect(
      feeOnTransfer(
        tx,
        [log(TOKEN, WALLET, TO, 990n, 1), log(TOKEN, WALLET, COLLECTOR, 20n, 2)],
        [],
      ),
    ).toEqual({
      received: { position: "transfer:0", logIndex: 1, amount: 990n },
      fees: [{ position: "transfer:1", logIndex: 2, amount: 20n }],
    });
  });
});

describe("transferMovedNothing", () => {
  const tx = { from: WALLET, to: TOKEN, value: 0n, data: transferData(TO, 7n) };

  it("is true for a transfer() whose token logged no Transfer out of the wallet (it returned false)", () => {
    expect(transferMovedNothing(tx, [])).toBe(true);
    // Other tokens' Transfers, or the token's into the wallet, are not the payment.
    expect(
      transferMovedNothing(tx, [log(OTHER, WALLET, TO, 7n, 1), log(TOKEN, TO, WALLET, 7n, 2)]),
    ).toBe(true);
  });

  it("is false when the token logged any Transfer out of the wallet, of any shape or recipient", () => {
    expect(transferMovedNothing(tx, [log(TOKEN, WALLET, TO, 7n, 1)])).toBe(false);
    // A fee Transfer alone, or an odd amount: left unbooked for a human, never failed.
    expect(transferMovedNothing(tx, [log(TOKEN, WALLET, OTHER, 1n, 1)])).toBe(false);
    expect(transferMovedNothing(tx, [log(TOKEN, WALLET, TO, 9n, 1)])).toBe(false);
    // A Transfer with its amount indexed (4 topics, no data) still moved value.
    const indexed = log(TOKEN, WALLET, TO, 7n, 1);
    expect(
      transferMovedNothing(tx, [
        { ...indexed, topics: [...indexed.topics, pad(toHex(7n))], data: "0x" },
      ]),
    ).toBe(false);
  });

  it("is false for a native transfer, a cancel or any other call", () => {
    expect(transferMovedNothing({ from: WALLET, to: TO, value: 5n, data: "0x" }, [])).toBe(false);
    expect(transferMovedNothing({ from: WALLET, to: WALLET, value: 0n, data: "0x" }, [])).toBe(
      false,
    );
    expect(transferMovedNothing({ ...tx, data: "0x12345678" }, [])).toBe(false);
  });
});
