/**
 * Deposit addresses: one counterfactual CREATE2 forwarder address per (chain, customer), computed
 * from the chain's ForwarderFactory (custody.contracts), salt keccak256(customer id) and the
 * forwarder init code; stored in custody.deposit_addresses and the indexer's watched set in one
 * transaction. Allocating costs nothing on chain and needs no key; sweeps (signer/sweeps) deploy
 * and destroy the forwarder in one transaction.
 */
export {
  allocateDepositAddress,
  assertCustomerId,
  type DepositAddress,
  findDepositAddress,
  getDepositAddress,
} from "./allocateDepositAddress.js";
export { type DeployFactoryResult, deployForwarderFactory } from "./deployFactory.js";
export { FactoryNotDeployedError, InvalidCustomerIdError, UnknownChainError } from "./errors.js";
export {
  type DeployedContract,
  FORWARDER_FACTORY,
  getContract,
  recordContract,
} from "./factories.js";
export {
  adoptForRecordedFactory,
  adoptSharedDepositAddresses,
  recordOnSharingChains,
} from "./sharedFactories.js";
