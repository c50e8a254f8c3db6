/**
 * An attestation whose bytes no node will include is cancelled by the signer (a 0-value transfer
 * of the hot wallet to itself at the attestation's nonce), and the request fails CANCELLED once the
 * cancel's block is final. The cancel's gas left the hot wallet like any other: the attestor books
 * it when it settles the attestation failed (as sweeps, cold moves and withdrawals book a cancel's
 * gas), or the chain's `fee` fact of the cancel stays unpaired (fee_not_booked) and custody:hot
 * says more than the wallet holds, which stops every later attestation of the chain.
 * Real signer, KMS emulator and anvil; the node refuses the attestation's send through a proxy.
 */
import { encodeFunctionData, type Hex, parseTransaction, zeroAddress, zeroHash } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain } from "../../chains/index.js";
import { withTransaction } from "../../foundation/db.js";
import { recordContract } from "../../indexers/index.js";
import { freshAddress } from "../../indexers/testing/chain.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { waitFor } from "../../signer/testing/harness.js";
import { type RpcProxy, startRpcProxy } from "../../signer/testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "../../signer/testing/signerTest.js";
import { createLedger } from "../createLedger.js";
import { ATTESTATION_KIND, createAttestor, ensureSalts, requestIdOf } from "./attest.js";
import { RESERVES_ATTESTOR, reservesAttestor } from "./deploy.js";
import { buildMerkleSumTree } from "./merkleSum.js";

const ATTESTOR = freshAddress(611);

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 } },
    proxy: startRpcProxy,
  });
  const ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  try {
    await ledger.ensureAssetsFromConfig(t.ctx.config.chains);
  } finally {
    await ledger.close();
  }
});

afterAll(async () => {
  await t?.stop();
});

describe("a cancelled attestation", () => {
  it("books the gas its cancel cost the hot wallet when it settles failed", async () => {
    const pool = t.ctx.db.pool;
    const chain = t.chain;
    const chainId = chain.chainId;
    const assetId = `${chainId}:${zeroAddress}`;
    const hot = t.account.address.toLowerCase() as Hex;
    await recordContract(pool, {
      chainId,
      name: RESERVES_ATTESTOR,
      address: ATTESTOR,
      hotWallet: hot,
      initCodeHash: null,
      deployTxHash: `0x${"d2".repeat(32)}`,
      blockNumber: 1n,
    });

    // An attestation stored and requested as a tick stores one (erin owed 40 at block 1).
    const block = 1;
    const requestId = requestIdOf(chainId, zeroAddress, block);
    const salts = await ensureSalts(pool, assetId, ["erin"]);
    const tree = buildMerkleSumTree([
      { customerId: "erin", balance: 40n, salt: salts.get("erin")! },
    ]);
    const id = await withTransaction(pool, async (c) => {
      const inserted = await c.query<{ id: string }>(
        `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
           reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
           addresses, request_id)
         VALUES ($1, $2, $3, $4, 0, $5, 40, 40, $6, $7, $7, 1, '[]', $8) RETURNING id`,
        [
          chainId,
          assetId,
          zeroAddress,
          block,
          ATTESTOR.toLowerCase(),
          tree.root.hash,
          zeroHash,
          requestId,
        ],
      );
      const id = inserted.rows[0]!.id;
      await c.query(
        "INSERT INTO attest.leaves (attestation_id, customer_id, balance) VALUES ($1, 'erin', 40)",
        [id],
      );
      await requestTransaction(c, {
        id: requestId,
        chainId,
        from: hot,
        to: ATTESTOR,
        value: 0n,
        data: encodeFunctionData({
          abi: reservesAttestor.abi,
          functionName: "attest",
          args: [zeroAddress, BigInt(block), 40n, 40n, tree.root.hash, zeroHash, zeroHash],
        }),
        kind: ATTESTATION_KIND,
        refId: id,
      });
      return id;
    });

    // Every node refuses the attestation's bytes for good: the signer cancels its nonce.
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const tx = parseTransaction((call.params as Hex[])[0]!);
      return tx.to?.toLowerCase() === ATTESTOR.toLowerCase()
        ? { error: { code: -32000, message: "exceeds block gas limit" } }
        : undefined;
    });
    const signer = t.run(t.account, {
      settings: { cancelBackoffMs: 200, maxCancelBackoffMs: 1_000, maxCancelAttempts: 3 },
    });
    let cancel: Hex;
    try {
      const failed = await waitFor("the attestation's request failed as cancelled", async () => {
        const [o] = await getTxOutcomes(pool, { requestIds: [requestId] });
        // Mine so the cancel's block becomes final.
        if (o?.status !== "failed") await t.rpc("evm_mine");
        return o?.status === "failed" ? o : undefined;
      });
      expect(failed).toMatchObject({ errorCode: "CANCELLED", cancelled: true, nonce: 0n });
      cancel = failed.txHash!;
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
    const receipt = await t.client.getTransactionReceipt({ hash: cancel });
    expect(receipt.from.toLowerCase()).toBe(hot);
    expect(receipt.to?.toLowerCase()).toBe(hot);
    const paid = receipt.gasUsed * receipt.effectiveGasPrice;
    expect(paid).toBeGreaterThan(0n);

    const attestor = createAttestor({
      common: t.ctx.common,
      pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(t.ctx.common),
    });
    await attestor.settle(chain);
    await attestor.settle(chain);
    // The cancel's gas, booked once against its chain fact (`<tx>:fee`), from the hot wallet.
    const booked = await pool.query<{ debit: string; credit: string; amount: string }>(
      `SELECT d.name AS debit, c.name AS credit, t.amount::text
         FROM ledger.transfers t
         JOIN ledger.accounts d ON d.id = t.debit_account_id
         JOIN ledger.accounts c ON c.id = t.credit_account_id
        WHERE t.tx_hash = $1`,
      [cancel],
    );
    expect(booked.rows).toEqual([
      { debit: "fees:gas", credit: `custody:hot:${hot}`, amount: paid.toString() },
    ]);
    const row = await pool.query<{ status: string; error: string | null; fee: string | null }>(
      "SELECT status, error, fee::text FROM attest.attestations WHERE id = $1",
      [id],
    );
    expect(row.rows[0]).toEqual({ status: "failed", error: "CANCELLED", fee: paid.toString() });
  }, 120_000);
});
