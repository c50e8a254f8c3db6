/**
 * Where `por verify` reads the attestation a proof refers to: a GraphQL endpoint (the Ponder app or
 * a subgraph; query in verify.js, shared with the page), the chain itself (the Attested event of
 * the ReservesAttestor, over JSON-RPC), or figures given on the command line.
 */
import { type Address, getAddress, isAddress, parseAbiItem } from "viem";
import { publicClientFor } from "../../chains/index.js";
import { fetchAttestation, ProofFormatError } from "./verify.js";

export const ATTESTED_EVENT = parseAbiItem(
  "event Attested(address indexed asset, uint256 indexed block, uint256 reserves, uint256 liabilities, bytes32 liabilitiesRoot, bytes32 addressesRoot, bytes32 reportHash)",
);

const LAST_ATTESTED_BLOCK = parseAbiItem(
  "function lastAttestedBlock(address asset) view returns (uint256)",
);

export type AttestationFromSource = {
  source: string;
  /**
   * What the source says beside the checks, changing no verdict (e.g. a later attestation of the
   * asset exists: the proof is of an older one, which it may still verify against).
   */
  notices?: string[];
  asset?: string;
  block?: string;
  reserves: string;
  liabilities: string;
  liabilitiesRoot: string;
  [key: string]: unknown;
};

type ProofRef = { asset?: unknown; block?: unknown };

function refOf(proof: unknown): { asset: Address; block: bigint } {
  const p = (proof ?? {}) as ProofRef;
  if (typeof p.asset !== "string" || !isAddress(p.asset, { strict: false }))
    throw new ProofFormatError("proof.asset must be the token address (zero address for native)");
  if (typeof p.block !== "string" || !/^\d+$/.test(p.block))
    throw new ProofFormatError("proof.block must be the attested block number as a decimal string");
  return { asset: getAddress(p.asset), block: BigInt(p.block) };
}

export async function attestationFromGraphql(
  url: string,
  proof: unknown,
): Promise<AttestationFromSource> {
  refOf(proof);
  const row = await fetchAttestation(url, proof);
  return {
    source: `GraphQL ${url}`,
    ...row,
    reserves: String(row.reserves),
    liabilities: String(row.liabilities),
    liabilitiesRoot: String(row.liabilitiesRoot),
    ...(row.block !== undefined ? { block: String(row.block) } : {}),
  };
}

/**
 * The Attested event at `contract`: the attestor the customer names (the custodian's published
 * address), never the proof's own `contract` (the custodian's word: any account can deploy a
 * ReservesAttestor and attest a tree that leaves other customers out). verifyProof compares the
 * two, the chain's id with the proof's, and the event's block with the node's finalized block.
 */
export async function attestationFromRpc(
  url: string,
  proof: unknown,
  contract: string | undefined,
): Promise<AttestationFromSource> {
  const ref = refOf(proof);
  if (typeof contract !== "string" || !isAddress(contract, { strict: false }))
    throw new ProofFormatError(
      "give --contract <address>: the custodian's published ReservesAttestor (a proof's own contract is not evidence)",
    );
  const client = publicClientFor(url, { retryCount: 1 });
  const logs = await client.getLogs({
    address: getAddress(contract),
    event: ATTESTED_EVENT,
    args: { asset: ref.asset, block: ref.block },
    fromBlock: 0n,
    toBlock: "latest",
  });
  const log = logs[0];
  if (!log)
    throw new ProofFormatError(
      `no Attested event for asset ${ref.asset} at block ${ref.block} from ${contract} on ${url}`,
    );
  // Which block the chain has finalized, from the same node: the verifier refuses an event above it
  // (a reorg can still take it out). A node that cannot say is not evidence either way.
  const finalized = await client.getBlock({ blockTag: "finalized" }).catch((error: unknown) => {
    throw new Error(
      `${url} did not return its finalized block, so whether the Attested event can still be reorged out is unknown: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
    );
  });
  const a = log.args;
  const notices = await laterAttestation(client, getAddress(contract), ref);
  return {
    notices,
    source: `Attested event of ${getAddress(contract)} (tx ${log.transactionHash}) via ${url}`,
    chainId: await client.getChainId(),
    contract: log.address,
    asset: a.asset!,
    block: a.block!.toString(),
    reserves: a.reserves!.toString(),
    liabilities: a.liabilities!.toString(),
    liabilitiesRoot: a.liabilitiesRoot!,
    addressesRoot: a.addressesRoot!,
    reportHash: a.reportHash!,
    transactionHash: log.transactionHash,
    eventBlock: log.blockNumber === null ? null : log.blockNumber.toString(),
    finalizedBlock: finalized.number.toString(),
  };
}

/**
 * A notice when the attestor has attested the asset at a later block than the proof's: the proof
 * verifies against what it names, but a customer checking today's holdings wants a newer proof. Not
 * a failed check (verified keeps meaning "this proof is in this attestation"); read at the node's
 * latest block, so the later one may not be final yet. A failed read says so rather than nothing:
 * no answer is no evidence that this attestation is the latest.
 */
async function laterAttestation(
  client: ReturnType<typeof publicClientFor>,
  contract: Address,
  ref: { asset: Address; block: bigint },
): Promise<string[]> {
  let last: bigint;
  try {
    last = await client.readContract({
      address: contract,
      abi: [LAST_ATTESTED_BLOCK],
      functionName: "lastAttestedBlock",
      args: [ref.asset],
    });
  } catch (error) {
    return [
      `whether a later attestation exists is unknown: ${contract}.lastAttestedBlock(${ref.asset}) did not answer: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
    ];
  }
  if (last <= ref.block) return [];
  return [
    `not the latest attestation: ${contract} has attested ${ref.asset} up to block ${last} (this proof is at block ${ref.block}); ask for a proof at that block`,
  ];
}

export function attestationFromFlags(flags: {
  root: string;
  liabilities?: string | undefined;
  reserves?: string | undefined;
}): AttestationFromSource {
  if (flags.liabilities === undefined || flags.reserves === undefined)
    throw new ProofFormatError("--root needs --liabilities and --reserves (the attested figures)");
  return {
    source: "the command line",
    reserves: flags.reserves,
    liabilities: flags.liabilities,
    liabilitiesRoot: flags.root,
  };
}
