/**
 * getTxOutcomes on real anvil, Postgres, Redis and the KMS emulator: the tracker records status,
 * block, fee and the transfer's fact position once; callers read them without fetching receipts.
 */
import { type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { anvilRpc, call, deploy, sendAndMine } from "../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { getTxOutcomes } from "./outcomes.js";
import { requestTransaction } from "./requests.js";
import { createSignerHarness, RECIPIENT, type SignerHarness, waitFor } from "./testing/harness.js";
import { startWalletSigner, type WalletSigner } from "./walletSigner.js";

let ctx: TestContext;
let h: SignerHarness;
let signer: WalletSigner;
let token: Hex;
const DEV = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266" as Hex;

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: 31337,
        config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 4 },
      },
    ],
  });
  h = await createSignerHarness(ctx);
  const rpc = anvilRpc(ctx.config.chains[0]!.rpcUrls[0]!);
  token = await deploy(rpc, DEV, "TestToken", [10n ** 24n]);
  await sendAndMine(rpc, {
    from: DEV,
    to: token,
    data: call("TestToken", "transfer", [h.account.address, 10n ** 21n]),
  });
  await h.rpc("anvil_setBalance", [h.account.address, toHex(parseEther("10"))]);
  signer = startWalletSigner({
    common: ctx.common,
    pool: ctx.db.pool,
    queues: ctx.queues,
    chain: { ...ctx.config.chains[0]!, tokens: [] },
    account: async () => h.account,
    databaseUrl: ctx.db.url,
    pollMs: 50,
  });
});

afterAll(async () => {
  await signer?.stop();
  await h?.close();
  await ctx?.cleanup();
});

describe("getTxOutcomes", () => {
  it("reports signing, then confirmed with block, fee and transfer position, for native and ERC-20", async () => {
    const since = new Date(Date.now() - 1000);
    await withTransaction(ctx.db.pool, async (c) => {
      await requestTransaction(c, {
        id: "native-1",
        chainId: 31337,
        from: h.account.address,
        to: RECIPIENT,
        value: 12345n,
        kind: "withdrawal",
        refId: "n1",
      });
      await requestTransaction(c, {
        id: "erc20-1",
        chainId: 31337,
        from: h.account.address,
        to: token,
        value: 0n,
        data: call("TestToken", "transfer", [RECIPIENT, 777n]),
        kind: "withdrawal",
        refId: "e1",
      });
    });
    const early = await getTxOutcomes(ctx.db.pool, { requestIds: ["native-1", "erc20-1", "nope"] });
    expect(early.map((o) => o.requestId)).toEqual(["erc20-1", "native-1"]);
    for (const o of early) expect(["signing", "broadcast"]).toContain(o.status);

    await waitFor("both mined", async () => {
      const list = await getTxOutcomes(ctx.db.pool, { requestIds: ["native-1", "erc20-1"] });
      return list.every((o) => o.blockNumber !== null);
    });
    await h.rpc("anvil_mine", ["0x2"]);
    const [erc20, native] = await waitFor("both confirmed", async () => {
      const list = await getTxOutcomes(ctx.db.pool, { requestIds: ["native-1", "erc20-1"] });
      return list.every((o) => o.status === "confirmed" || o.status === "finalized")
        ? list
        : undefined;
    });
    for (const o of [erc20!, native!]) {
      const receipt = await h.client.getTransactionReceipt({ hash: o.txHash! });
      expect(o.blockNumber).toBe(receipt.blockNumber);
      expect(o.blockHash).toBe(receipt.blockHash);
      expect(o.gasUsed).toBe(receipt.gasUsed);
      expect(o.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice);
      expect(o.receiptSuccess).toBe(true);
      expect(o.cancelled).toBe(false);
      expect(o.reorgs).toBe(0);
      expect(o.changedAt.getTime()).toBeGreaterThanOrEqual(since.getTime());
    }
    expect(native!).toMatchObject({
      transferPosition: "tx",
      transferLogIndex: null,
      value: 12345n,
    });
    // The token's Transfer log in that receipt, by block-wide index.
    const receipt = await h.client.getTransactionReceipt({ hash: erc20!.txHash! });
    const log = receipt.logs.find((l) => l.address.toLowerCase() === token.toLowerCase())!;
    expect(erc20!).toMatchObject({
      transferPosition: "transfer:0",
      transferLogIndex: log.logIndex,
    });

    const changed = await getTxOutcomes(ctx.db.pool, { since, kind: "withdrawal" });
    expect(changed.map((o) => o.requestId).sort()).toEqual(["erc20-1", "native-1"]);
    const later = await getTxOutcomes(ctx.db.pool, { since: new Date(Date.now() + 60_000) });
    expect(later).toEqual([]);
  });
});
