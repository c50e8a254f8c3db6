/**
 * What reconciliation reads from modules it may not import, given by its caller (the composition
 * root builds the role and the CLI; tests pass the same production implementations):
 * - `SweepReader`: booked sweeps, owned by the signer (above the ledger): signer/sweeps'
 *   `sweepReader`;
 * - `ChainReaders`: the on-chain reads (balances, finalized head), chains/' adapters.
 * Reads take the run's client, so they share its REPEATABLE READ snapshot.
 */
import type { ChainConfig, EvmAdapter } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { PoolClient } from "../../foundation/db.js";

/**
 * The chain reads a run makes (the finalized head; balances through Multicall3 or a JSON-RPC batch):
 * one reader per chain, the same object on every call for a chain. Reconciliation builds no RPC
 * client (DESIGN: the ledger does not call RPC on its own): the composition root gives chains/'
 * adapters (`adapterPerChain(common)`), tests give theirs.
 */
export type ChainReader = Pick<EvmAdapter, "chain" | "rpc" | "getFinalizedBlock">;
export type ChainReaders = (chain: ChainConfig) => ChainReader;

/** What the role and the CLI are given: the sources, the chain readers built once `common` exists. */
export type ReconSources = { sweeps: SweepReader; chains: (common: Common) => ChainReaders };

/**
 * One item of a booked sweep: what its Swept event says moved out of `address`, its tx, and the
 * hot wallet it moved to (lowercase).
 */
export type SweptItem = {
  address: string;
  asset: string;
  swept: bigint;
  txHash: string;
  hotWallet: string;
};

export type SweepReader = {
  /** Deposit addresses of the chain a sweep settled at or after `since` took value from. */
  sweptAddressesSince(
    client: PoolClient,
    args: { chainId: number; since: Date },
  ): Promise<string[]>;
  /** Items (swept > 0) of booked sweeps out of these addresses, with the sweep's tx hash. */
  bookedSweepItems(
    client: PoolClient,
    args: { chainId: number; addresses: readonly string[] },
  ): Promise<SweptItem[]>;
};
