/**
 * A send's gas limit and fees when the first endpoint lags or syncs (DESIGN: missing data is never
 * evidence). Intake took `eth_estimateGas` and `eth_feeHistory` at `latest` from the first
 * endpoint, whatever its head. A syncing node answers from its own old state: there a listed token
 * has no code yet, the call to it "succeeds" for 21,000 gas and calldata, and the transfer was
 * signed with that limit: it ran out of gas on chain (the withdrawal failed, its gas spent). Its
 * base fee was block 0's, a fraction of the head's: the send waited for bump after bump, each
 * priced on the same old history. Now both are asked at the head of the node that told the
 * wallet's count and balance (intake, bump), so only a node at that block answers.
 */
import { type Hex, parseEther, parseGwei, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anvilRpc,
  call,
  deployTestToken,
  setPublishedFinalized,
} from "../indexers/testing/chain.js";
import { getTxRequest } from "./requests.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;
let token: Hex;

beforeAll(async () => {
  t = await startLyingSignerTest(1, { chain: { bumpIntervalMs: 60_000 } });
  const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
  token = await deployTestToken(anvilRpc(anvilUrl), t.account.address, 10n ** 21n);
  await t.rpc("anvil_setBalance", [t.account.address, toHex(parseEther("10"))]);
  await t.rpc("anvil_mine", ["0x5"]);
  // Our final block published (as the indexer does): the signer then asks every endpoint its head
  // and takes the wallet's count, balances and head from a node that shows that block.
  const final = await t.client.getBlock({ blockTag: "latest" });
  await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, final);
  t.chain = {
    ...t.chain,
    rpcUrls: [t.proxy!.url, anvilUrl],
    tokens: [{ address: token, symbol: "TT", decimals: 18 }],
  };
});

afterAll(async () => {
  t.proxy?.setLag(null);
  await t?.stop();
});

describe("gas estimates with the first endpoint behind the head", () => {
  it("a token transfer's limit comes from a node at the head, not a syncing first endpoint", async () => {
    t.proxy!.setLag("syncing");
    t.signer = t.run();
    await t.withdraw("syncing-token", {
      to: token,
      value: 0n,
      data: call("TestToken", "transfer", [RECIPIENT, 777n]),
    });
    const mined = await waitFor(
      "the transfer mined",
      async () => {
        const o = await t.outcome("syncing-token");
        if (o.blockNumber !== null) return o;
        await t.rpc("evm_mine");
        return undefined;
      },
      { timeoutMs: 60_000, everyMs: 300 },
    );
    // old code: expected false to be true (its limit came from the syncing node's block 0, where
    // the token has no code: out of gas on chain, the withdrawal failed).
    expect(mined.receiptSuccess).toBe(true);
    expect((await t.confirmedWith("syncing-token")).status).toMatch(/confirmed|finalized/);
    const balance = (await t.rpc("eth_call", [
      { to: token, data: call("TestToken", "balanceOf", [RECIPIENT]) },
      "latest",
    ])) as Hex;
    expect(BigInt(balance)).toBe(777n);
  });

  it("a send's fees come from a node at the head, not a lagging first endpoint", async () => {
    // Two blocks at a low base fee, then two at 100 gwei and less: a node three blocks behind
    // tells the base fee of the block after its head, a low one (a syncing node's is older still).
    await t.rpc("anvil_mine", ["0x2"]);
    await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("100"))]);
    await t.rpc("anvil_mine", ["0x2"]);
    t.proxy!.setLag(3);
    // A signer started now: its first read asks every endpoint its head, so the node at the best
    // head is known. (One running since before the lag may still take the lagging node for the
    // best, from a head it showed earlier, until its heads are asked again: fees a few blocks old,
    // which the max fee's 2 x base fee covers, but not this test's spike.)
    await t.signer?.stop();
    t.signer = t.run();
    await t.withdraw("lagging-fees");
    await waitFor(
      "the send signed",
      async () => (await getTxRequest(t.ctx.db.pool, "lagging-fees"))?.nonce != null,
    );
    const { rows } = await t.ctx.db.pool.query<{ max_fee_per_gas: string }>(
      "SELECT max_fee_per_gas::text FROM custody.tx_attempts WHERE request_id = $1",
      ["lagging-fees"],
    );
    // old code: expected 691911134 to be greater than or equal to 76562500000 (2 x the lagging
    // node's next base fee + tip: below the next block's, so no block includes it until bumped).
    expect(BigInt(rows[0]!.max_fee_per_gas)).toBeGreaterThanOrEqual(parseGwei("76.5625"));
    expect((await t.confirmedWith("lagging-fees")).status).toMatch(/confirmed|finalized/);
  });

  it("a bump's fees come from a node at the head, not a lagging first endpoint", async () => {
    t.proxy!.setLag(null);
    await t.rpc("evm_setAutomine", [false]);
    const account = await t.wallet(parseEther("10"));
    const signer = t.run(account, { chain: { ...t.chain, bumpIntervalMs: 2_000 } });
    try {
      await t.withdraw("lagging-bump", { from: account.address });
      await waitFor(
        "the send broadcast",
        async () => (await getTxRequest(t.ctx.db.pool, "lagging-bump"))?.status === "broadcast",
      );
      const maxFees = async () =>
        (
          await t.ctx.db.pool.query<{ max_fee_per_gas: string }>(
            "SELECT max_fee_per_gas::text FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
            ["lagging-bump"],
          )
        ).rows.map((r) => BigInt(r.max_fee_per_gas));
      const [first] = await maxFees();
      // A spike past what the send pays: two blocks without it, then a node three blocks behind
      // (its history ends before the spike) is the first endpoint when the send is due.
      const spike = first! * 4n;
      await t.rpc("anvil_setNextBlockBaseFeePerGas", [toHex(spike)]);
      await t.rpc("anvil_mine", ["0x2"]);
      t.proxy!.setLag(3);
      const replaced = await waitFor(
        "the send replaced",
        async () => {
          const fees = await maxFees();
          return fees.length > 1 ? fees : undefined;
        },
        { timeoutMs: 15_000 },
      );
      // old code: expected 903414540 to be greater than or equal to 2421251467 (the first's max
      // fee raised by 10%, the lagging node's market being lower: below the next block's base fee).
      expect(replaced.at(-1)!).toBeGreaterThanOrEqual((spike * 875n * 875n) / 1_000_000n);
      await t.rpc("evm_setAutomine", [true]);
      expect((await t.confirmedWith("lagging-bump")).status).toMatch(/confirmed|finalized/);
    } finally {
      await signer.stop();
      t.proxy!.setLag(null);
      await t.rpc("evm_setAutomine", [true]);
    }
  });
});
