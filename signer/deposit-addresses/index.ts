/**
 * The ForwarderFactory's deploy from a chain's hot wallet (it needs the wallet's key). Deposit
 * addresses themselves, the contracts registry and their records live with the watched set:
 * indexers/depositAddresses.
 */
export { type DeployFactoryResult, deployForwarderFactory } from "./deployFactory.js";
