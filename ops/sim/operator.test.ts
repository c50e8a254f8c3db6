/**
 * The sim's operator checks the chain before failing a withdrawal in needs_review (operator.ts).
 * Seed 63 of the withdrawals sim (child signer, dead withdrawal with a KMS failure on its cancel):
 * both endpoints withheld receipts until the cancel's block was final, the signer put the request
 * in needs_review (NONCE_CONSUMED_NO_KNOWN_ATTEMPT), and the operator failed it before the signer's
 * next tick found the receipt once the faults cleared. The chain had the cancel all along.
 */
import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import type { Rpc } from "../../indexers/testing/chain.js";
import { minedOnChain } from "./operator.js";

const SEND = `0x${"a".repeat(64)}` as Hex;
const CANCEL = `0x${"c".repeat(64)}` as Hex;
const PENDING = `0x${"e".repeat(64)}` as Hex;

/** anvil as the operator reads it: receipts by hash (null: unknown; no block: pending). */
function chain(receipts: Record<string, { blockNumber: Hex | null }>): {
  rpc: Rpc;
  asked: string[];
} {
  const asked: string[] = [];
  const rpc = (async (method: string, params: unknown[] = []) => {
    expect(method).toBe("eth_getTransactionReceipt");
    asked.push(params[0] as string);
    return receipts[params[0] as string] ?? null;
  }) as Rpc;
  return { rpc, asked };
}

describe("minedOnChain (the sim operator's check)", () => {
  it("finds the dead withdrawal's cancel in its block although its send was refused", async () => {
    const { rpc, asked } = chain({ [CANCEL]: { blockNumber: "0xe" } });
    expect(await minedOnChain(rpc, [SEND, CANCEL])).toEqual({ hash: CANCEL, blockNumber: 14n });
    expect(asked).toEqual([SEND, CANCEL]);
  });

  it("says none mined when every attempt was refused (the unsendable case: the operator fails it)", async () => {
    const { rpc } = chain({});
    expect(await minedOnChain(rpc, [SEND, CANCEL])).toBeUndefined();
  });

  it("does not count a pending transaction (a receipt without a block) as mined", async () => {
    const { rpc } = chain({ [PENDING]: { blockNumber: null } });
    expect(await minedOnChain(rpc, [SEND, PENDING])).toBeUndefined();
  });

  it("says none mined for a request without attempts", async () => {
    const { rpc, asked } = chain({ [CANCEL]: { blockNumber: "0x1" } });
    expect(await minedOnChain(rpc, [])).toBeUndefined();
    expect(asked).toEqual([]);
  });
});
