/**
 * The signer's finality comes from the node's `finalized` tag: that tag counts only when its block
 * is on the chain the tracker follows. Two real anvils with the same chain id on different chains:
 * ours serves the signer, and the endpoint answers the `finalized` tag from the other (a provider
 * backend stuck on a minority fork), whose finalized height is far above the block our
 * transactions mined in, on a chain where that block is not ours. Taken as is, the tag made a
 * reverted withdrawal `failed` (its hold released) and a paid one finalized while neither block
 * was final on our chain: a reorg there can still mine the payment (paid and released) or undo it.
 * Second case: a second endpoint on the other fork, past the tag's height while ours is below it,
 * showed the tag's block; the tag must be checked by the node that shows the request's block.
 */
import { type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/rpc.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { readNonceEvidence } from "./nonceEvidence.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let other: Anvil;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      config: { confirmations: { kind: "blocks", blocks: 1 }, finality: { kind: "finalized" } },
    },
    proxy: startRpcProxy,
  });
  other = await startAnvil({ chainId: TEST_CHAIN_ID, port: 0 });
});

afterAll(async () => {
  await other?.stop();
  await t?.stop();
});

async function otherRpc<T>(method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(other.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return ((await res.json()) as { result: T }).result;
}

async function finalizedAt(id: string): Promise<Date | null> {
  const { rows } = await t.ctx.db.pool.query<{ finalized_at: Date | null }>(
    "SELECT finalized_at FROM custody.tx_requests WHERE id = $1",
    [id],
  );
  return rows[0]!.finalized_at;
}

/** Withdrawals mined on our chain while the tag comes from the other fork: nothing final by it. */
async function neitherFinalByTheirTag(p: string, endpoints: string[]) {
  // Their chain: 150 blocks, finalized 86; ours: a few blocks (our own finalized tag: genesis).
  await otherRpc("anvil_mine", ["0x96"]);
  const theirs = await otherRpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", [
    "finalized",
    false,
  ]);
  expect(BigInt(theirs.number)).toBeGreaterThan(50n);
  t.proxy!.setIntercept((call) =>
    call.method === "eth_getBlockByNumber" && (call.params as unknown[])[0] === "finalized"
      ? { result: theirs }
      : undefined,
  );
  // A contract that always reverts: a payment to it mines with status 0 (the caller's gas limit
  // skips the estimate, which would refuse it before a nonce).
  const reverter = "0x00000000000000000000000000000000000000aa";
  await t.rpc("anvil_setCode", [reverter, "0x60006000fd"]);
  const account = await t.wallet(parseEther("10"));
  const signer = t.run(account, { chain: { ...t.chain, rpcUrls: endpoints } });
  try {
    await t.withdraw(
      [{ id: `${p}-paid` }, { id: `${p}-reverted`, to: reverter, gasLimit: 100_000n }],
      { from: account.address },
    );
    await waitFor(
      "both mined in our chain",
      async () => {
        const paid = await getTxRequest(t.ctx.db.pool, `${p}-paid`);
        const reverted = await getTxRequest(t.ctx.db.pool, `${p}-reverted`);
        return paid?.status === "confirmed" && reverted?.receiptSuccess === false;
      },
      { timeoutMs: 10_000 },
    );
    const reverted = (await getTxRequest(t.ctx.db.pool, `${p}-reverted`))!;
    const ourBlock = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [
      `0x${reverted.blockNumber!.toString(16)}`,
      false,
    ]);
    const theirBlock = await otherRpc<{ hash: Hex }>("eth_getBlockByNumber", [
      `0x${reverted.blockNumber!.toString(16)}`,
      false,
    ]);
    expect(theirBlock.hash).not.toBe(ourBlock.hash);
    // Let the tracker run many ticks with the other fork's tag.
    const calls = t.proxy!.calls("eth_getBlockByNumber");
    await waitFor("more ticks", async () => t.proxy!.calls("eth_getBlockByNumber") > calls + 10, {
      timeoutMs: 10_000,
    });
    expect((await getTxRequest(t.ctx.db.pool, `${p}-reverted`))!.status).toBe("mined");
    expect(await finalizedAt(`${p}-paid`)).toBeNull();
    expect(await finalizedAt(`${p}-reverted`)).toBeNull();
    // Our own node's tag, once past those blocks, still finalizes them.
    t.proxy!.setIntercept(undefined);
    await t.rpc("anvil_mine", ["0x50"]);
    await waitFor(
      "both final on our chain",
      async () =>
        (await getTxRequest(t.ctx.db.pool, `${p}-reverted`))?.status === "failed" &&
        (await finalizedAt(`${p}-paid`)) !== null,
      { timeoutMs: 10_000 },
    );
  } finally {
    await signer.stop();
    t.proxy!.setIntercept(undefined);
  }
}

describe("a finalized tag from another fork", () => {
  it("finalizes and fails nothing mined on our chain", () =>
    neitherFinalByTheirTag("fork", [t.proxy!.url]));

  it("nor when a second endpoint on that fork, past the tag's height, shows its block", () =>
    neitherFinalByTheirTag("fork2", [t.proxy!.url, other.rpcUrl]));
});

/*
 * The evidence an operator's fail rests on says a nonce was used "in a final block" only from a
 * `finalized` tag whose block is on the chain the evidence was read from. Two real anvils with the
 * same chain id on different chains: the nonce was used in block 1 of ours (its own finalized tag:
 * genesis); the endpoint answers the tag from the other (finalized 86). Taken as is, the evidence
 * said `final: true`, and the operator's fail released the request's hold at once, while the
 * transaction that used the nonce could still be reorged out and the request's own send mine.
 */
describe("nonce evidence with a finalized tag from another fork", () => {
  it("does not call the block that used the nonce final", async () => {
    const wallet = "0x00000000000000000000000000000000000b0b01" as Hex;
    await t.rpc("anvil_setBalance", [wallet, toHex(10n ** 18n)]);
    await t.rpc("anvil_impersonateAccount", [wallet]);
    await t.rpc("eth_sendTransaction", [
      { from: wallet, to: "0x000000000000000000000000000000000000f00d", value: "0x7" },
    ]);
    await t.rpc("anvil_stopImpersonatingAccount", [wallet]);
    await otherRpc("anvil_mine", ["0x96"]);
    const theirs = await otherRpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", [
      "finalized",
      false,
    ]);
    t.proxy!.setIntercept((call) =>
      call.method === "eth_getBlockByNumber" && (call.params as unknown[])[0] === "finalized"
        ? { result: theirs }
        : undefined,
    );
    const rpc = createRpcClient({ chainId: TEST_CHAIN_ID, urls: [t.proxy!.url] });
    const evidence = await readNonceEvidence(t.chain, rpc, wallet, 0n);
    expect(evidence).toMatchObject({ kind: "consumed", final: false });
    // Our own node's tag, once past that block: final.
    t.proxy!.setIntercept(undefined);
    await t.rpc("anvil_mine", ["0x50"]);
    expect(await readNonceEvidence(t.chain, rpc, wallet, 0n)).toMatchObject({
      kind: "consumed",
      final: true,
    });
  });
});
