/**
 * Test set-up shared by the attestation and subgraph-parity integration tests: a prepared custody
 * (ops/e2e/setup.ts) with its 100 ETH float booked and the chain's ReservesAttestor deployed from
 * its hot wallet, and a wait until a block is final in the index; and a year of attestations for the
 * tests that bound what a read of attest.attestations costs.
 */
import { type PublicClient, parseEther } from "viem";
import type { ChainConfig } from "../../../chains/index.js";
import type { Common } from "../../../foundation/common.js";
import type { Pool } from "../../../foundation/db.js";
import type { DeployedContract } from "../../../indexers/index.js";
import type { PreparedCustody } from "../../../ops/e2e/setup.js";
import { waitFor } from "../../../ops/testing/wait.js";
import { createKmsAccount, createKmsClient } from "../../../signer/kmsAccount.js";
import { signerTransactions } from "../../../signer/requests.js";
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
      { common, pool, ledger, signerTransactions },
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
 * Wait until `block` is final in the index: published final by the indexer (the chain's finality
 * rule, what attestation waits for), mining a block per look; or, with `rule: "confirmed"`, only
 * past the confirmation rule (what a reconciliation run needs): that mines the rule's blocks once
 * (`block` is at most the head) and then only waits, so a slow indexer cannot be pushed on past
 * the finality rule while the test means the block to be confirmed and not yet final. 60 s deadline.
 */
export async function waitFinalInIndex({
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
  const confirmations = chain.confirmations.kind === "blocks" ? chain.confirmations.blocks : 0;
  if (rule === "confirmed") {
    if (chain.confirmations.kind !== "blocks")
      throw new Error('waitFinalInIndex: rule "confirmed" needs a confirmation rule in blocks');
    for (let i = 0; i < confirmations; i++) await mine();
  }
  return waitFor(
    `block ${block} ${rule} in the index`,
    async () => {
      if (rule === "final") await mine();
      const r = await pool.query<{ block_number: string; finalized_number: string | null }>(
        "SELECT block_number, finalized_number FROM chain.checkpoints WHERE chain_id = $1",
        [chain.chainId],
      );
      const row = r.rows[0];
      return rule === "confirmed"
        ? Number(row?.block_number ?? -1) - confirmations >= block
        : Number(row?.finalized_number ?? -1) >= block;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );
}

/** The hours of `seedYearOfAttestations`: one attestation per chain and asset an hour, a year. */
export const YEAR_OF_HOURS = 8760;

/**
 * A year of hourly attestations (block = hour 1 to YEAR_OF_HOURS) on chains 31501 to 31503, three
 * assets each, each row with ten custody addresses' balances, then ANALYZE: the size at which a read
 * must come from a few index pages, not the table. Each is confirmed at its hour and final an hour
 * later, except every `failedEvery`th hour's (failed) and each chain's newest, whose status `newest`
 * may set per chain (not confirmed: no confirmation or final time).
 */
export async function seedYearOfAttestations(
  pool: Pool,
  { failedEvery = 0, newest = {} }: { failedEvery?: number; newest?: Record<number, string> } = {},
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query(
      `INSERT INTO attest.attestations (chain_id, asset_id, token, block_number, run_id, contract,
         reserves, liabilities, liabilities_root, addresses_root, report_hash, leaf_count,
         addresses, request_id, status, created_at, confirmed_at, final_at)
       SELECT c, c || ':' || t, t, h, h, $2, 1, 1, $3, $3, $3, 1, a.addresses,
              'attest:' || c || ':' || t || ':' || h,
              s.status,
              now() - ($1 - h) * interval '1 hour',
              CASE WHEN s.status = 'confirmed' THEN now() - ($1 - h) * interval '1 hour' END,
              CASE WHEN s.status = 'confirmed' AND h < $1 - 1
                   THEN now() - ($1 - h - 1) * interval '1 hour' END
         FROM generate_series(31501, 31503) c,
              (SELECT '0x' || lpad(to_hex(n), 40, '0') AS t FROM generate_series(0, 2) n) tokens,
              generate_series(1, $1) h,
              (SELECT jsonb_object_agg('0x' || lpad(to_hex(k), 40, '0'), '1000000000000000000')
                   AS addresses
                 FROM generate_series(1, 10) k) a,
              LATERAL (SELECT CASE
                   WHEN h = $1 AND c = ANY($4::int[]) THEN ($5::text[])[array_position($4::int[], c)]
                   WHEN h % NULLIF($6::int, 0) = 0 THEN 'failed'
                   ELSE 'confirmed' END AS status) s`,
      [
        YEAR_OF_HOURS,
        `0x${"3".repeat(40)}`,
        `0x${"0".repeat(64)}`,
        Object.keys(newest).map(Number),
        Object.values(newest),
        failedEvery,
      ],
    );
    await client.query("ANALYZE attest.attestations");
    // The insert's and ANALYZE's page reads reach the statistics views when this backend flushes
    // them, which may be seconds later: in the middle of a test's count of the pages a read costs
    // (ops/testing/database.ts tablePagesRead counts the whole table's). Flushed now.
    await client.query("SELECT pg_stat_force_next_flush()");
    await client.query("SELECT 1");
  } finally {
    client.release();
  }
}
