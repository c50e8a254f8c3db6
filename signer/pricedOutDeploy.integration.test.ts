/**
 * A stored CLI deploy (signer/storedDeploy.ts) whose fees fell below the market holds the hot
 * wallet's lowest unused nonce: every later request waits behind it. The signer's gap stage
 * (broadcaster/gaps.ts) replaces it at its nonce with raised fees (never above the chain's cap),
 * keeping the hash it replaced; the deploy's follower then records whichever of its bytes mined,
 * including bytes signed before the replacement. The deploy command's own follower, run while its
 * stored bytes are priced out and no signer runs (it holds the lease the signer would need),
 * replaces them by the same rule itself. Real anvil, Postgres and the KMS emulator; the deploy is
 * the CLI's own sender, stopped at its crash point.
 */
import { getContractAddress, type Hex, numberToHex, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "../chains/index.js";
import { FORWARDER_FACTORY, getContract } from "../indexers/index.js";
import type { CrashPoint } from "./broadcaster/crashPoints.js";
import type { KmsAccount } from "./kmsAccount.js";
import type { Lease } from "./lease.js";
import { getTxRequest } from "./requests.js";
import { storedDeploySender } from "./storedDeploy.js";
import { waitFor } from "./testing/harness.js";
import {
  deployFactoryStored,
  priceOut,
  readStoredDeploy,
  restoreBaseFee,
  type StoredDeploy,
  storeKilledDeploy,
  TINY_CONTRACT,
  whileMining,
} from "./testing/killedDeploy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    // Final (the deploy's follower ends) 4 blocks deep.
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 4 } },
  });
});

afterAll(async () => {
  await t?.stop();
});

const rpc = (method: string, params: unknown[] = []) =>
  t.client.request({ method: method as never, params: params as never });
const mined = (address: Hex) => t.client.getTransactionCount({ address });

const deployRow = (account: KmsAccount, name: string) =>
  readStoredDeploy(t.ctx.db.pool, account.address, name);

/**
 * The stored deploy once replaced (its hash no longer `hash`) and the replacement in the node's
 * pool. The replacer stores the new bytes first, then sends them (a crash between resends the
 * stored bytes): a test resuming blocks on the row alone may have the node mine the bytes it still
 * holds, the first ones (failed once under load: "expected '0xe326…' not to be '0xe326…'").
 */
function replacedInPool(account: KmsAccount, name: string, hash: Hex): Promise<StoredDeploy> {
  return waitFor(
    `the ${name} deploy replaced, in the node's pool`,
    async () => {
      const r = await deployRow(account, name);
      if (r.txHash === hash) return undefined;
      const held = await t.client.getTransaction({ hash: r.txHash }).catch(() => null);
      return held ? r : undefined;
    },
    { timeoutMs: 20_000 },
  );
}

/**
 * The receipt of whichever of the row's bytes mined: a replacer with a short bump interval may
 * have stored (and sent) newer bytes while older ones were mined.
 */
async function minedOf(row: StoredDeploy) {
  for (const hash of [row.txHash, ...row.earlierTxHashes]) {
    const receipt = await t.client.getTransactionReceipt({ hash }).catch(() => null);
    if (receipt) return receipt;
  }
  throw new Error(`none of ${row.txHash}, ${row.earlierTxHashes.join(", ")} mined`);
}

/** A deploy the CLI sent and was killed after (automine off: the node holds it unmined). */
async function sentUnmined(account: KmsAccount, name: string, nonce: bigint) {
  const sent = await storeKilledDeploy(t, account, name, "deploy_after_send");
  expect(sent).toMatchObject({ nonce, status: "broadcast" });
  expect(await t.client.getTransaction({ hash: sent.txHash })).toMatchObject({ blockNumber: null });
  return sent;
}

/** The CLI's sender run to its end (the deploy followed until final): what it records. */
async function follow(account: KmsAccount, name: string) {
  await rpc("anvil_mine", [numberToHex(t.chain.reorgWindow)]);
  return followOn(account, name);
}

/** The CLI's sender on `chain`, run until the deploy is final (the caller mines). */
async function followOn(account: KmsAccount, name: string, chain = t.chain) {
  let lease: Lease | undefined;
  try {
    const send = storedDeploySender({
      common: t.ctx.common,
      databaseUrl: t.ctx.db.url,
      chain,
      client: t.client,
      rpc: createRpcClient({ chainId: t.chain.chainId, urls: t.chain.rpcUrls }),
      account,
      sendRawTransaction: (raw) => t.client.sendRawTransaction({ serializedTransaction: raw }),
      getFinalizedBlock: () => t.client.getBlock({ blockTag: "finalized" }),
      onLease: (l) => {
        lease = l;
      },
      pollMs: 100,
    });
    return await send({ name, data: TINY_CONTRACT.init });
  } finally {
    await lease?.release().catch(() => {});
  }
}

/** `custody-node contracts deploy`'s body in process, "killed" at `killAt` when given. */
const deployFactory = (account: KmsAccount, killAt?: CrashPoint) =>
  deployFactoryStored(t, account, killAt ? { killAt } : {});

/** Deploy gas booked in the ledger for `txHash` (fee transfers). */
async function gasBooked(txHash: Hex): Promise<bigint[]> {
  const { rows } = await t.ctx.db.pool.query<{ amount: string }>(
    "SELECT amount::text FROM ledger.transfers WHERE kind = 'fee' AND tx_hash = $1",
    [txHash.toLowerCase()],
  );
  return rows.map((r) => BigInt(r.amount));
}

describe("a stored deploy priced out of the market", () => {
  it("is replaced with raised fees: it mines, the later withdrawal goes out, and the contract is recorded", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    const stored = await storeKilledDeploy(t, account, "PricedOut");
    expect(stored).toMatchObject({ nonce: first, status: "signed", earlierTxHashes: [] });
    const oldFee = await priceOut(t.client, t.chain, stored.rawTx);
    try {
      await t.withdraw(["priced-out"], { from: account.address });
      const signer = t.run(account, { settings: { stallResendMs: 300 } });
      try {
        await waitFor("the withdrawal confirmed", async () => {
          return (await getTxRequest(t.ctx.db.pool, "priced-out"))?.status === "confirmed";
        });
      } finally {
        await signer.stop();
      }
      expect((await getTxRequest(t.ctx.db.pool, "priced-out"))!.nonce).toBe(first + 1n);
      const row = await deployRow(account, "PricedOut");
      expect(row.txHash).not.toBe(stored.txHash);
      expect(row.earlierTxHashes).toEqual([stored.txHash]);
      const replacement = parseTransaction(row.rawTx);
      expect(replacement.to ?? null).toBeNull(); // still a contract creation
      expect(replacement.nonce).toBe(Number(first));
      expect(replacement.data).toBe(TINY_CONTRACT.init);
      expect(replacement.maxFeePerGas!).toBeGreaterThan(oldFee);
      expect(replacement.maxFeePerGas!).toBeLessThanOrEqual(t.chain.maxFeePerGas);
      const receipt = await t.client.getTransactionReceipt({ hash: row.txHash });
      expect(receipt.status).toBe("success");
      const address = getContractAddress({ from: account.address, nonce: first });
      expect(await t.client.getCode({ address })).toBe(TINY_CONTRACT.runtime);

      // The CLI's next run follows the replacement to final and records that contract.
      const sent = await follow(account, "PricedOut");
      expect(sent).toMatchObject({ hash: row.txHash, address });
    } finally {
      await restoreBaseFee(t.client, oldFee);
    }
  });

  it("whose bytes a node holds without mining them: replaced after the chain's bump interval, and the wallet moves on", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    // No blocks: the node holds the deploy (and later the withdrawal) in its pool, unmined.
    await rpc("evm_setAutomine", [false]);
    try {
      const sent = await sentUnmined(account, "HeldUnmined", first);
      await t.withdraw(["held-unmined"], { from: account.address });
      const signer = t.run(account, {
        settings: { stallResendMs: 300 },
        chain: { ...t.chain, bumpIntervalMs: 300 },
      });
      try {
        const row = await replacedInPool(account, "HeldUnmined", sent.txHash);
        expect(row.earlierTxHashes[0]).toBe(sent.txHash);
        expect(parseTransaction(row.rawTx).maxFeePerGas!).toBeGreaterThan(
          parseTransaction(sent.rawTx).maxFeePerGas!,
        );
        await rpc("evm_setAutomine", [true]);
        await rpc("evm_mine");
        await waitFor("the withdrawal confirmed", async () => {
          return (await getTxRequest(t.ctx.db.pool, "held-unmined"))?.status === "confirmed";
        });
      } finally {
        await signer.stop();
      }
      expect((await getTxRequest(t.ctx.db.pool, "held-unmined"))!.nonce).toBe(first + 1n);
      const receipt = await minedOf(await deployRow(account, "HeldUnmined"));
      expect(receipt.transactionHash).not.toBe(sent.txHash); // a replacement mined
      expect(receipt.status).toBe("success");
      const address = getContractAddress({ from: account.address, nonce: first });
      expect(await follow(account, "HeldUnmined")).toMatchObject({
        hash: receipt.transactionHash,
        address,
      });
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
  });

  it("whose bytes from before the replacement mine: the follower records the deploy from that hash", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    const stored = await storeKilledDeploy(t, account, "OldMines");
    const oldFee = await priceOut(t.client, t.chain, stored.rawTx);
    let replaced: StoredDeploy;
    await rpc("evm_setAutomine", [false]);
    try {
      const signer = t.run(account, { settings: { stallResendMs: 300 } });
      try {
        replaced = await waitFor("the deploy replaced", async () => {
          const row = await deployRow(account, "OldMines");
          return row.txHash !== stored.txHash ? row : undefined;
        });
      } finally {
        await signer.stop();
      }
      expect(replaced.earlierTxHashes).toEqual([stored.txHash]);
      // The replacement is lost; the old bytes, held by some node, mine once the base fee falls.
      await rpc("anvil_dropTransaction", [replaced.txHash]);
      await restoreBaseFee(t.client, oldFee);
      await t.client.sendRawTransaction({ serializedTransaction: stored.rawTx });
      await rpc("evm_mine");
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
    await rpc("evm_mine");
    const receipt = await t.client.getTransactionReceipt({ hash: stored.txHash });
    expect(receipt.status).toBe("success");
    expect(await mined(account.address)).toBe(Number(first) + 1);

    // The follower finds the mined bytes by their earlier hash (the row's own never mines).
    let sent: Awaited<ReturnType<typeof follow>> | undefined;
    let failed: unknown;
    void follow(account, "OldMines").then(
      (s) => {
        sent = s;
      },
      (e) => {
        failed = e;
      },
    );
    await waitFor("the follower's answer", async () => sent ?? failed);
    expect(failed).toBeUndefined();
    const address = getContractAddress({ from: account.address, nonce: first });
    expect(sent).toMatchObject({ hash: stored.txHash, address });
    expect(sent!.receipt.transactionHash).toBe(stored.txHash);
  });
});

describe("the deploy command run while its stored deploy is priced out", () => {
  it("replaces the bytes itself at their nonce, no signer running: the factory recorded from the replacement, its gas booked once", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    await expect(deployFactory(account, "deploy_after_commit")).rejects.toThrow(
      "killed at deploy_after_commit",
    );
    const stored = await deployRow(account, FORWARDER_FACTORY);
    expect(stored).toMatchObject({ nonce: first, status: "signed", earlierTxHashes: [] });
    const oldFee = parseTransaction(stored.rawTx).maxFeePerGas!;
    const market = oldFee * 4n;
    expect(market * 2n).toBeLessThan(t.chain.maxFeePerGas);
    try {
      const { contract, deployed } = await whileMining(t.client, deployFactory(account), market);
      const row = await deployRow(account, FORWARDER_FACTORY);
      expect(row.txHash).not.toBe(stored.txHash);
      expect(row.earlierTxHashes).toEqual([stored.txHash]);
      const replacement = parseTransaction(row.rawTx);
      expect(replacement.to ?? null).toBeNull();
      expect(replacement.nonce).toBe(Number(first));
      expect(replacement.data).toBe(parseTransaction(stored.rawTx).data);
      expect(replacement.maxFeePerGas!).toBeGreaterThan(oldFee);
      expect(replacement.maxFeePerGas!).toBeLessThanOrEqual(t.chain.maxFeePerGas);

      const address = getContractAddress({ from: account.address, nonce: first });
      expect(deployed).toBe(true);
      expect(contract).toMatchObject({ address, deployTxHash: row.txHash });
      expect(await getContract(t.ctx.db.pool, t.chain.chainId, FORWARDER_FACTORY)).toMatchObject({
        address,
        deployTxHash: row.txHash,
      });
      const receipt = await t.client.getTransactionReceipt({ hash: row.txHash });
      expect(receipt.status).toBe("success");
      expect(await gasBooked(row.txHash)).toEqual([receipt.gasUsed * receipt.effectiveGasPrice]);
      expect(await gasBooked(stored.txHash)).toEqual([]);
      expect(await mined(account.address)).toBe(Number(first) + 1);

      // Run again: the factory is kept, its gas not booked a second time.
      expect(await deployFactory(account)).toMatchObject({ deployed: false });
      expect(await gasBooked(row.txHash)).toHaveLength(1);
    } finally {
      await restoreBaseFee(t.client, oldFee);
    }
  });

  it("whose bytes a node holds unmined past the chain's bump interval: replaced by the command's follower, which records the contract", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    // No blocks: the node holds the deploy in its pool, unmined.
    await rpc("evm_setAutomine", [false]);
    try {
      const sent = await sentUnmined(account, "HeldByNode", first);
      const run = followOn(account, "HeldByNode", { ...t.chain, bumpIntervalMs: 300 });
      run.catch(() => {}); // awaited below; a failure before then must not go unhandled
      const row = await replacedInPool(account, "HeldByNode", sent.txHash);
      expect(row.earlierTxHashes).toEqual([sent.txHash]);
      expect(parseTransaction(row.rawTx).maxFeePerGas!).toBeGreaterThan(
        parseTransaction(sent.rawTx).maxFeePerGas!,
      );
      await rpc("evm_setAutomine", [true]);
      const result = await whileMining(t.client, run);
      const receipt = await minedOf(await deployRow(account, "HeldByNode"));
      expect(receipt.transactionHash).not.toBe(sent.txHash); // a replacement mined
      const address = getContractAddress({ from: account.address, nonce: first });
      expect(result).toMatchObject({ hash: receipt.transactionHash, address });
      expect(await mined(account.address)).toBe(Number(first) + 1);
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
  });

  it("whose nonce another transaction of the key used after its follower replaced the bytes: the error names the current bytes and the earlier ones", async () => {
    const account = await t.wallet();
    const first = BigInt(await mined(account.address));
    // No blocks: the node holds the replacement in its pool, where another transaction takes it.
    await rpc("evm_setAutomine", [false]);
    const stored = await storeKilledDeploy(t, account, "UsedElsewhere");
    expect(stored).toMatchObject({ nonce: first, status: "signed" });
    const oldFee = await priceOut(t.client, t.chain, stored.rawTx);
    try {
      // No second replacement while the node holds the first (bump interval long past the test).
      const run = followOn(account, "UsedElsewhere", { ...t.chain, bumpIntervalMs: 600_000 });
      run.catch(() => {}); // awaited below; a failure before then must not go unhandled
      const row = await waitFor("the deploy replaced by its follower", async () => {
        const r = await deployRow(account, "UsedElsewhere");
        return r.txHash !== stored.txHash ? r : undefined;
      });
      expect(row.earlierTxHashes).toEqual([stored.txHash]);
      // The key used elsewhere: a transfer at the deploy's nonce outbids the replacement and mines.
      const replacement = parseTransaction(row.rawTx);
      const tip = replacement.maxPriorityFeePerGas! * 2n + 1_000_000_000n;
      const other = await account.signTransaction({
        chainId: t.chain.chainId,
        nonce: Number(first),
        to: account.address,
        value: 0n,
        gas: 21_000n,
        maxFeePerGas: replacement.maxFeePerGas! * 2n + tip,
        maxPriorityFeePerGas: tip,
      });
      const otherHash = await t.client.sendRawTransaction({ serializedTransaction: other });
      await rpc("evm_setAutomine", [true]);
      const failed = await whileMining(
        t.client,
        run.then(
          () => undefined,
          (e: unknown) => e as Error,
        ),
      );
      expect((await t.client.getTransactionReceipt({ hash: otherHash })).status).toBe("success");
      expect(failed?.message).toMatch(
        new RegExp(
          `^UsedElsewhere deploy ${row.txHash} \\(nonce ${first}, contract 0x[0-9a-fA-F]{40}; replacing ${stored.txHash}\\): its nonce was used by another transaction`,
        ),
      );
      expect((await deployRow(account, "UsedElsewhere")).status).toBe("dropped");
    } finally {
      await rpc("evm_setAutomine", [true]);
      await restoreBaseFee(t.client, oldFee);
    }
  });
});
