/**
 * What reconciliation reads from modules it may not import, given by its caller (the composition
 * root builds the role and the CLI; tests pass the same production implementations):
 * - `SweepReader`: booked sweeps, owned by the signer (above the ledger): signer/sweeps'
 *   `sweepReader`.
 * Reads take the run's client, so they share its REPEATABLE READ snapshot.
 */
import type { PoolClient } from "../../foundation/db.js";

/** One item of a booked sweep: what its Swept event says moved out of `address`, and its tx. */
export type SweptItem = { address: string; asset: string; swept: bigint; txHash: string };

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
