/**
 * The evidence an operator's fail rests on says a nonce was used "in a final block" only from a
 * `finalized` tag whose block is on the chain the evidence was read from. Two real anvils with the
 * same chain id on different chains: the nonce was used in block 1 of ours (its own finalized tag:
 * genesis); the endpoint answers the tag from the other (finalized 86). Taken as is, the evidence
 * said `final: true`, and the operator's fail released the request's hold at once, while the
 * transaction that used the nonce could still be reorged out and the request's own send mine.
 */
import { type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/rpc.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { readNonceEvidence } from "./nonceEvidence.js";
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
