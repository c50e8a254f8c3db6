/**
 * getTxOutcomes on real anvil, Postgres, Redis and the KMS emulator: the tracker records status,
 * block, fee and the transfer's fact position once; callers read them without fetching receipts.
 */
import { type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { anvilRpc, call, deployTestToken } from "../indexers/testing/chain.js";
import { getTxOutcomes } from "./outcomes.js";
import { requestTransaction } from "./requests.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let token: Hex;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 4 } },
  });
  const rpc = anvilRpc(t.ctx.config.chains[0]!.rpcUrls[0]!);
  token = await deployTestToken(rpc, t.account.address, 10n ** 21n);
  await t.rpc("anvil_setBalance", [t.account.address, toHex(parseEther("10"))]);
  t.signer = t.run(t.account, { chain: { ...t.ctx.config.chains[0]!, tokens: [] } });
});

afterAll(async () => {
  await t?.stop();
});

describe("getTxOutcomes", () => {
  it("reports signing, then confirmed with block, fee and transfer position, for native and ERC-20", async () => {
    const since = new Date(Date.now() - 1000);
    await withTransaction(t.ctx.db.pool, async (c) => {
      await requestTransaction(c, {
        id: "native-1",
        chainId: 31337,
        from: t.account.address,
        to: RECIPIENT,
        value: 12345n,
        kind: "withdrawal",
        refId: "n1",
      });
      await requestTransaction(c, {
        id: "erc20-1",
        chainId: 31337,
        from: t.account.address,
        to: token,
        value: 0n,
        data: call("TestToken", "transfer", [RECIPIENT, 777n]),
        kind: "withdrawal",
        refId: "e1",
      });
    });
    const early = await getTxOutcomes(t.ctx.db.pool, {
      requestIds: ["native-1", "erc20-1", "nope"],
    });
    expect(early.map((o) => o.requestId)).toEqual(["erc20-1", "native-1"]);
    for (const o of early) expect(["signing", "broadcast"]).toContain(o.status);

    await waitFor("both mined", async () => {
      const list = await getTxOutcomes(t.ctx.db.pool, { requestIds: ["native-1", "erc20-1"] });
      return list.every((o) => o.blockNumber !== null);
    });
    await t.rpc("anvil_mine", ["0x2"]);
    const [erc20, native] = await waitFor("both confirmed", async () => {
      const list = await getTxOutcomes(t.ctx.db.pool, { requestIds: ["native-1", "erc20-1"] });
      return list.every((o) => o.status === "confirmed" || o.status === "finalized")
        ? list
        : undefined;
    });
    for (const o of [erc20!, native!]) {
      const receipt = await t.client.getTransactionReceipt({ hash: o.txHash! });
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
    const receipt = await t.client.getTransactionReceipt({ hash: erc20!.txHash! });
    const log = receipt.logs.find((l) => l.address.toLowerCase() === token.toLowerCase())!;
    expect(erc20!).toMatchObject({
      transferPosition: "transfer:0",
      transferLogIndex: log.logIndex,
    });

    const changed = await getTxOutcomes(t.ctx.db.pool, { since, kind: "withdrawal" });
    expect(changed.map((o) => o.requestId).sort()).toEqual(["erc20-1", "native-1"]);
    const later = await getTxOutcomes(t.ctx.db.pool, { since: new Date(Date.now() + 60_000) });
    expect(later).toEqual([]);
  });
});
