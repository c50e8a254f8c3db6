/**
 * Test set-up shared by the attestation and subgraph-parity integration tests: a prepared custody
 * (ops/e2e/setup.ts) with its 100 ETH float booked and the chain's ReservesAttestor deployed from
 * its hot wallet, and a wait until a block is final in the index.
 */
import { type PublicClient, parseEther } from "viem";
import type { ChainConfig } from "../../../chains/index.js";
import type { Common } from "../../../foundation/common.js";
import type { Pool } from "../../../foundation/db.js";
import type { DeployedContract } from "../../../indexers/index.js";
import type { PreparedCustody } from "../../../ops/e2e/setup.js";
import { waitFor } from "../../../ops/testing/wait.js";
import { createKmsAccount, createKmsClient } from "../../../signer/kmsAccount.js";
import { deployReservesAttestor } from "../../attest/deploy.js";
import { createLedger } from "../../createLedger.js";
import { bookTreasuryMove } from "../../treasury.js";

/** Book the prepared hot wallet's 100 ETH funding and deploy the ReservesAttestor from it. */
export async function fundAndDeployAttestor({
  common,
  pool,
  chain,
  client,
  kmsEndpoint,
  prepared,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  client: PublicClient;
  kmsEndpoint: string;
  prepared: PreparedCustody;
}): Promise<DeployedContract> {
  const ledger = createLedger({ common, pool });
  try {
    await bookTreasuryMove(
      { common, pool, ledger },
      {
        move: "fund",
        chainId: chain.chainId,
        txHash: prepared.fundTxHash,
        wallet: prepared.hotWallet,
        amount: parseEther("100"),
        by: "test",
        reason: "hot wallet float",
      },
    );
  } finally {
    await ledger.close();
  }
  const kms = createKmsClient({ region: "us-east-1", endpoint: kmsEndpoint });
  try {
    const { contract } = await deployReservesAttestor({
      common,
      pool,
      chain,
      client,
      account: await createKmsAccount({ kms, keyId: prepared.keyId }),
      sendRawTransaction: (raw) =>
        client.request({ method: "eth_sendRawTransaction", params: [raw] }),
    });
    return contract;
  } finally {
    kms.destroy();
  }
}

/**
 * Mine until `block` is final in the index: published final by the indexer (the chain's finality
 * rule, what attestation waits for), or with `rule: "confirmed"` only past the confirmation rule
 * (2 blocks here, what a reconciliation run needs); 60 s deadline.
 */
export function waitFinalInIndex({
  pool,
  chain,
  block,
  mine,
  rule = "final",
}: {
  pool: Pool;
  chain: ChainConfig;
  block: number;
  mine: () => Promise<unknown>;
  rule?: "final" | "confirmed";
}): Promise<boolean> {
  return waitFor(
    `block ${block} ${rule} in the index`,
    async () => {
      await mine();
      const r = await pool.query<{ block_number: string; finalized_number: string | null }>(
        "SELECT block_number, finalized_number FROM chain.checkpoints WHERE chain_id = $1",
        [chain.chainId],
      );
      const row = r.rows[0];
      return rule === "confirmed"
        ? Number(row?.block_number ?? -1) - 2 >= block
        : Number(row?.finalized_number ?? -1) >= block;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );
}
