/**
 * Imports every module's role definitions so they register themselves in foundation/roles.ts.
 * A module adds one import line here when it gains a role.
 */
import "../api/role.js";
import "../indexers/role.js";
import "../ledger/attest/role.js";
import "../ledger/recon/role.js";
import "../ledger/role.js";
import "../signer/role.js";
import "../signer/sweeps/role.js";
