/**
 * No withdrawal is taken, nor handed to the signer, on a halted chain (docs/chain-halts.md): a
 * reorg reached a final block and nothing is orphaned until an operator resumes it, so a customer's
 * balance there may still count deposits the chain no longer has. Rejecting or cancelling one
 * sends nothing and stays allowed. One handed to the signer before the halt waits there unsent
 * (signer/broadcaster/halt.ts).
 */
import type { PoolClient } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import { readHalts } from "../../indexers/index.js";

export class ChainHaltedError extends BaseError {
  override name = "ChainHaltedError";
  constructor(chainId: number, halt: { haltedAt: Date; reason: string }) {
    super(
      `Chain ${chainId} is halted (a reorg reached a final block): no withdrawal is taken or sent on it until an operator resumes it`,
      {
        code: "CHAIN_HALTED",
        meta: { chain_id: chainId, halted_since: halt.haltedAt.toISOString(), reason: halt.reason },
      },
    );
  }
}

export async function refuseOnHaltedChain(client: PoolClient, chainId: number): Promise<void> {
  const [halt] = await readHalts(client, { chainId });
  if (halt) throw new ChainHaltedError(chainId, halt);
}
