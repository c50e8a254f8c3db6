/**
 * Every role implementation `custody-node start` can run, listed in one place (the composition
 * root). A module exports its `RoleDefinition` values from its role.ts; a new one is added here.
 *
 * Order: the roles start in --roles order (ROLE_NAMES with no --roles), and the parts of one role
 * start in the order listed below; they stop in reverse start order (ops/start.ts).
 */

import { apiRole, apiWorkerRole } from "../api/index.js";
import { adapterPerChain } from "../chains/index.js";
import type { RoleDefinition, RoleName } from "../foundation/roles.js";
import { indexerRole } from "../indexers/index.js";
import { createAttestRole } from "../ledger/attest/role.js";
import { creditingRole } from "../ledger/index.js";
import { reconcilerRole } from "../ledger/recon/index.js";
import { getTxOutcomes, requestTransaction, signerRole } from "../signer/index.js";
import { sweepReader, sweepsRole } from "../signer/sweeps/index.js";

export const ROLES: Readonly<Record<RoleName, readonly RoleDefinition[]>> = {
  indexer: [indexerRole],
  worker: [apiWorkerRole, creditingRole, sweepsRole],
  signer: [signerRole],
  api: [apiRole],
  reconciler: [
    createAttestRole({ requestTransaction, getTxOutcomes }, (common) => adapterPerChain(common)),
    reconcilerRole({ sweeps: sweepReader, chains: (common) => adapterPerChain(common) }),
  ],
};
