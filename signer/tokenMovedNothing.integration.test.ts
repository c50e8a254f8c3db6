/**
 * A token whose `transfer()` returns false instead of reverting (old ERC-20s: paused, balance
 * short, a blacklist that answers false) on real anvil, Postgres and the KMS emulator. Its
 * transaction mines with receipt status 1 and no Transfer log: nothing moved. The tracker read
 * "status 1" as paid: the request was reported confirmed, then finalized (terminal), with no
 * transfer position, so its withdrawal could never be booked nor failed (held for ever, with
 * WITHDRAWAL_OUTCOME_INCOMPLETE on every pass) and a cold move of the asset stayed open for ever
 * (no later cold move of that asset could start). A `transfer()` that mined without a Transfer of
 * the token from the wallet to its recipient moved nothing: it fails, like a revert, only at its
 * final block (TRANSFER_MOVED_NOTHING), and is never reported confirmed before that.
 */
import { type Abi, type Address, encodeFunctionData, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anvilRpc, type Rpc, sendAndMine } from "../indexers/testing/chain.js";
import { getTxOutcomes, type TxOutcome, type TxOutcomeStatus } from "./outcomes.js";
import { deployFalseToken, FALSE_DEPLOYER, FALSE_TOKEN } from "./testing/falseToken.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let rpc: Rpc;
let abi: Abi;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 4 } },
  });
  rpc = anvilRpc(t.ctx.config.chains[0]!.rpcUrls[0]!);
  abi = await deployFalseToken(rpc);
  await tokenCall("mint", [t.account.address, 1000n]);
  t.signer = t.run(t.account);
});

afterAll(async () => {
  await t?.stop();
});

async function tokenCall(functionName: string, args: unknown[]) {
  await sendAndMine(rpc, {
    from: FALSE_DEPLOYER.toLowerCase() as Hex,
    to: FALSE_TOKEN.toLowerCase() as Hex,
    data: encodeFunctionData({ abi, functionName, args }),
  });
}

async function tokenBalance(owner: Address): Promise<bigint> {
  const data = encodeFunctionData({ abi, functionName: "balanceOf", args: [owner] });
  return BigInt(await rpc<Hex>("eth_call", [{ to: FALSE_TOKEN, data }, "latest"]));
}

/** Mines until the request's outcome is terminal (failed or finalized); every status seen. */
async function followToEnd(id: string): Promise<{ outcome: TxOutcome; seen: TxOutcomeStatus[] }> {
  const seen: TxOutcomeStatus[] = [];
  const outcome = await waitFor(
    `${id} failed or finalized`,
    async () => {
      const o = (await getTxOutcomes(t.ctx.db.pool, { requestIds: [id] }))[0];
      if (o && seen.at(-1) !== o.status) seen.push(o.status);
      if (o?.status === "failed" || o?.status === "finalized") return o;
      await t.rpc("evm_mine");
      return undefined;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );
  return { outcome, seen };
}

describe("a token transfer() that returns false", () => {
  it("mined with status 1 and no Transfer: never confirmed, failed at its final block (TRANSFER_MOVED_NOTHING)", async () => {
    await tokenCall("setPaused", [true]);
    await t.withdraw("false-1", {
      to: FALSE_TOKEN,
      value: 0n,
      data: encodeFunctionData({ abi, functionName: "transfer", args: [RECIPIENT, 100n] }),
    });
    const { outcome, seen } = await followToEnd("false-1");
    // Nothing moved on chain.
    expect(await tokenBalance(RECIPIENT)).toBe(0n);
    expect(await tokenBalance(t.account.address)).toBe(1000n);
    expect(outcome.receiptSuccess).toBe(true);
    // Never reported paid: a caller would post a withdrawal that sent nothing.
    expect(seen).not.toContain("confirmed");
    expect(outcome).toMatchObject({
      status: "failed",
      errorCode: "TRANSFER_MOVED_NOTHING",
      transferPosition: null,
      feeOnTransfer: null,
    });
    // Decided at a final block (the evidence that releases a hold), with the gas it cost.
    expect(outcome.finalizedAt).not.toBeNull();
    expect(outcome.fee).toBeGreaterThan(0n);
  });

  it("the same token, unpaused, pays: confirmed and finalized with its Transfer's position", async () => {
    await tokenCall("setPaused", [false]);
    await t.withdraw("false-2", {
      to: FALSE_TOKEN,
      value: 0n,
      data: encodeFunctionData({ abi, functionName: "transfer", args: [RECIPIENT, 100n] }),
    });
    const { outcome, seen } = await followToEnd("false-2");
    expect(await tokenBalance(RECIPIENT)).toBe(100n);
    expect(seen).toContain("confirmed");
    expect(outcome).toMatchObject({
      status: "finalized",
      errorCode: null,
      transferPosition: "transfer:0",
    });
  });
});
