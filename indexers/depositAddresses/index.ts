/**
 * Deposit addresses: one counterfactual CREATE2 forwarder address per (chain, customer), computed
 * from the chain's ForwarderFactory (chain.contracts), salt keccak256(customer id) and the
 * forwarder init code (chains/contracts); stored in chain.deposit_addresses and the watched set in
 * one transaction. A deposit address is a watched address with an owner, so its records live with
 * the watched set. Allocating costs nothing on chain and needs no key; the factory deploy needs the
 * hot wallet's key (signer/deposit-addresses), and sweeps (signer/sweeps) deploy and destroy the
 * forwarder in one transaction, reading the published view chain.deposit_forwarders.
 */
export {
  allocateDepositAddress,
  assertCustomerId,
  type DepositAddress,
  findDepositAddress,
  getDepositAddress,
} from "./allocate.js";
export {
  contractHotWallet,
  contractHotWallets,
  type DeployedContract,
  FORWARDER_FACTORY,
  getContract,
  recordContract,
} from "./contracts.js";
export { FactoryNotDeployedError, InvalidCustomerIdError, UnknownChainError } from "./errors.js";
export {
  adoptForRecordedFactory,
  adoptSharedDepositAddresses,
  recordOnSharingChains,
} from "./sharedFactories.js";
