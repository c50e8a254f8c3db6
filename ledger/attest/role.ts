/**
 * The attestation step of the `reconciler` role: for every served chain with an `attestation`
 * schedule, settle attestations in flight and attest the newest reconciliation run's block when
 * it is clean and due (attest.ts). Its own loop beside the reconciliation runs, so a slow chain
 * read here never delays reconciliation; a Postgres advisory lock per chain keeps two reconciler
 * processes from attesting the same chain at once (the standby skips), and a tick whose lock went
 * unheard is fenced at its commit (attest.ts: its checks made again under a transaction lock).
 * The signer's request intake and outcomes come from the composition root (ops/roles.ts): the
 * ledger never imports the signer.
 */
import type { Common } from "../../foundation/common.js";
import type { RoleDefinition } from "../../foundation/roles.js";
import { startLockedChainLoop } from "../recon/chainLoop.js";
import { type AttestChainReaders, createAttestor } from "./attest.js";
import { AttestLockLostError } from "./errors.js";
import type { AttestationSender } from "./sender.js";

const LOCK_BASE = 0x6174_7374_0000; // "atst" + chain id

/** The role part, sending through `sender` (the signer's `requestTransaction` and `getTxOutcomes`). */
export const createAttestRole = (
  sender: AttestationSender,
  /** The reserves' on-chain reads, built once the role's `common` exists (ops/roles.ts: chains/' adapters). */
  readers: (common: Common) => AttestChainReaders,
): RoleDefinition => ({
  name: "reconciler",
  description: "on-chain attestations of reserves and liabilities after clean reconciliation runs",
  async start(ctx) {
    const chains = ctx.chains.filter((c) => c.attestation !== undefined);
    const log = ctx.common.logger.child({ component: "attest" });
    if (chains.length === 0) return { async stop() {} };
    const attestor = createAttestor({
      common: ctx.common,
      pool: ctx.pool,
      sender,
      chains: readers(ctx.common),
    });
    const intervalMs = Math.min(...chains.map((c) => c.attestation!.intervalMs));

    // A tick in flight finishes when stopped: its one write (attestation + signer request) is a
    // single transaction, so a kill -9 leaves either both or neither.
    return startLockedChainLoop({
      pool: ctx.pool,
      chains,
      lockBase: LOCK_BASE,
      intervalMs,
      // A tick whose chain lock is lost stops (`held`): another reconciler may attest the chain.
      run: async (chain, held) => {
        const result = await attestor.tick(
          chain,
          { everyBlocks: chain.attestation!.everyBlocks },
          { signal: held },
        );
        if ("skipped" in result && result.skipped !== "not_due" && result.skipped !== "in_flight")
          log.info({
            msg: "no attestation",
            chain_id: chain.chainId,
            reason: result.skipped,
            detail: result.detail,
          });
      },
      stopping: ctx.common.shutdown.isShuttingDown,
      onStopped: (chain, error) =>
        log.info({
          msg: "attestation tick interrupted by stop",
          chain_id: chain.chainId,
          err: error,
        }),
      onError: (chain, error) => {
        if (error instanceof AttestLockLostError) {
          log.warn({ msg: "attestation stopped: the chain's lock was lost", err: error });
          return true;
        }
        log.error({ msg: "attestation failed", chain_id: chain.chainId, err: error });
        return true;
      },
    });
  },
});
