/**
 * A customer's liabilities proof for the latest confirmed attestation of an asset: their leaf (id,
 * salt, balance), the Merkle-sum path to the root, and where the root was attested (chain,
 * contract, block, transaction). The tree is rebuilt from the attestation's stored leaves and
 * checked against its stored root, so a proof is only ever served for the root that went on chain.
 */
import type { Address, Hex } from "viem";
import { formatAmount } from "../../foundation/amounts.js";
import type { Pool } from "../../foundation/db.js";
import { buildMerkleSumTree, proofPath } from "./merkleSum.js";

export type LiabilitiesProof = {
  version: 1;
  customerId: string;
  salt: Hex;
  balance: string;
  path: { side: "left" | "right"; hash: Hex; sum: string }[];
  chainId: number;
  assetId: string;
  asset: Address;
  block: string;
  contract: Address;
  txHash: Hex;
  /** What the custody attested (a verifier reads these from the chain or an indexer, not from here). */
  attested: {
    reserves: string;
    liabilities: string;
    liabilitiesRoot: Hex;
    addressesRoot: Hex;
    reportHash: Hex;
  };
};

export type ProofLookup =
  | { found: true; proof: LiabilitiesProof }
  | { found: false; reason: "no_attestation" | "no_leaf" };

export async function liabilitiesProof(
  pool: Pool,
  args: { customerId: string; assetId: string },
): Promise<ProofLookup> {
  const a = await pool.query<{
    id: string;
    chain_id: string;
    token: Address;
    block_number: string;
    contract: Address;
    tx_hash: Hex;
    reserves: bigint;
    liabilities: bigint;
    liabilities_root: Hex;
    addresses_root: Hex;
    report_hash: Hex;
  }>(
    `SELECT id, chain_id, token, block_number, contract, tx_hash, reserves, liabilities,
            liabilities_root, addresses_root, report_hash
       FROM attest.attestations WHERE asset_id = $1 AND status = 'confirmed'
      ORDER BY block_number DESC LIMIT 1`,
    [args.assetId],
  );
  const att = a.rows[0];
  if (!att) return { found: false, reason: "no_attestation" };
  const leaves = await pool.query<{ customer_id: string; balance: bigint; salt: Hex }>(
    `SELECT l.customer_id, l.balance, s.salt FROM attest.leaves l
       JOIN attest.salts s ON s.customer_id = l.customer_id AND s.asset_id = $2
      WHERE l.attestation_id = $1`,
    [att.id, args.assetId],
  );
  if (!leaves.rows.some((l) => l.customer_id === args.customerId))
    return { found: false, reason: "no_leaf" };
  const tree = buildMerkleSumTree(
    leaves.rows.map((l) => ({
      customerId: l.customer_id,
      balance: l.balance,
      salt: l.salt,
    })),
  );
  if (tree.root.hash !== att.liabilities_root || tree.root.sum !== att.liabilities)
    throw new Error(
      `attestation ${att.id}: the stored leaves give root ${tree.root.hash}/${tree.root.sum}, not the attested ${att.liabilities_root}/${att.liabilities}`,
    );
  const leaf = tree.leaves.find((l) => l.customerId === args.customerId)!;
  const { path } = proofPath(tree, args.customerId);
  return {
    found: true,
    proof: {
      version: 1,
      customerId: args.customerId,
      salt: leaf.salt,
      balance: leaf.balance.toString(),
      path: path.map((s) => ({ side: s.side, hash: s.hash, sum: s.sum.toString() })),
      chainId: Number(att.chain_id),
      assetId: args.assetId,
      asset: att.token,
      block: att.block_number,
      contract: att.contract,
      txHash: att.tx_hash,
      attested: {
        reserves: formatAmount(att.reserves),
        liabilities: formatAmount(att.liabilities),
        liabilitiesRoot: att.liabilities_root,
        addressesRoot: att.addresses_root,
        reportHash: att.report_hash,
      },
    },
  };
}
