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

/** What the indexer publishes as our final block: our node's `finalized` block (number, hash). */
async function ourFinalBlock(): Promise<{ number: bigint; hash: string }> {
  const b = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["finalized", false]);
  return { number: BigInt(b.number), hash: b.hash.toLowerCase() };
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
 * The evidence an operator's fail rests on says a nonce was used "in a final block" only at or
 * below our final block (the indexer's published finalized block), never by a node's `finalized`
 * tag. Two real anvils with the same chain id on different chains: the nonce was used in our head
 * block; the endpoint answers the tag from the other (finalized far above). Taken as is, the
 * evidence said `final: true`, and the operator's fail released the request's hold at once, while
 * the transaction that used the nonce could still be reorged out and the request's own send mine.
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
    const evidence = await readNonceEvidence(t.chain, rpc, wallet, 0n, await ourFinalBlock());
    expect(evidence).toMatchObject({ kind: "consumed", final: false });
    // Nothing published: nothing final either.
    expect(await readNonceEvidence(t.chain, rpc, wallet, 0n, null)).toMatchObject({
      kind: "consumed",
      final: false,
    });
    // Our final block, once past that block: final (the node's tag still from the other fork).
    await t.rpc("anvil_mine", ["0x50"]);
    expect(await readNonceEvidence(t.chain, rpc, wallet, 0n, await ourFinalBlock())).toMatchObject({
      kind: "consumed",
      final: true,
    });
    t.proxy!.setIntercept(undefined);
  });
});

/*
 * The evidence is one node's answer, on our chain: the node that names the transaction must also
 * show our final block (the indexer's published finalized block), which names every block below
 * it. The wallet's nonce 0 was used by our own payment on our chain, and by another transaction on
 * the other fork, whose node is the first endpoint (behind ours, so it is asked for heights it
 * has). Read through the fallback, the count and the block came from the fork's node and the
 * finality from ours (its `finalized` tag failing on the fork's endpoint) or from the fork's own
 * tag: the evidence said the nonce was used, in a final block, by a transaction not ours, and an
 * operator's fail released the hold of a payment that left on our chain.
 */
describe("nonce evidence with endpoints on two forks", () => {
  async function usedOnBoth(wallet: Hex, tagFailsOnFork: boolean): Promise<void> {
    const useNonce = async (send: typeof t.rpc, value: bigint) => {
      await send("anvil_setBalance", [wallet, toHex(10n ** 18n)]);
      await send("anvil_impersonateAccount", [wallet]);
      const hash = await send<Hex>("eth_sendTransaction", [
        { from: wallet, to: "0x000000000000000000000000000000000000f00d", value: toHex(value) },
      ]);
      await send("anvil_stopImpersonatingAccount", [wallet]);
      return hash.toLowerCase() as Hex;
    };
    const ours = await useNonce(t.rpc, 7n);
    const theirs = await useNonce(otherRpc, 8n);
    // Their chain 100 blocks on; ours 10 blocks past theirs, so its node is asked too.
    await otherRpc("anvil_mine", ["0x64"]);
    const theirHead = BigInt(await otherRpc<Hex>("eth_blockNumber"));
    const ourHead = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    await t.rpc("anvil_mine", [toHex(theirHead + 10n - ourHead)]);
    // Our final block is below their head, so their node is asked for its block there.
    const final = await ourFinalBlock();
    const fork = await startRpcProxy(other.rpcUrl);
    fork.setIntercept((call) => {
      if (
        tagFailsOnFork &&
        call.method === "eth_getBlockByNumber" &&
        (call.params as unknown[])[0] === "finalized"
      )
        throw new Error("backend unavailable"); // HTTP 502
      return undefined;
    });
    try {
      const rpc = createRpcClient({ chainId: TEST_CHAIN_ID, urls: [fork.url, t.proxy!.url] });
      const evidence = await readNonceEvidence(t.chain, rpc, wallet, 0n, final);
      expect(evidence).toMatchObject({ kind: "consumed", txHash: ours, final: true });
      expect(theirs).not.toBe(ours);
      // The fork's node alone does not show our final block: no conclusion, never "final".
      const forkOnly = createRpcClient({ chainId: TEST_CHAIN_ID, urls: [fork.url] });
      await expect(readNonceEvidence(t.chain, forkOnly, wallet, 0n, final)).rejects.toMatchObject({
        code: "SIGNER_CHAIN_CHECK_UNAVAILABLE",
      });
    } finally {
      await fork.close();
    }
  }

  it("does not join the fork's transaction to our finality", () =>
    usedOnBoth("0x00000000000000000000000000000000000b0b02", true));

  it("does not take the fork's own finalized tag for ours", () =>
    usedOnBoth("0x00000000000000000000000000000000000b0b03", false));
});
