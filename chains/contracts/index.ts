/**
 * The Solidity contracts the custody uses, as committed artifacts (see compile.ts), and the
 * off-chain side of counterfactual deposit addresses: a deposit address is CREATE2(factory, salt,
 * forwarder init code), so it is computed here without any RPC or key.
 */
import { type Abi, type Address, getContractAddress, type Hex, keccak256, stringToHex } from "viem";
import artifactsJson from "./artifacts.json" with { type: "json" };
import type { Artifacts } from "./compile.js";

export const artifacts = artifactsJson as unknown as Artifacts;

function artifact(name: string): { abi: Abi; bytecode: Hex } {
  const a = artifacts.contracts[name];
  if (!a) throw new Error(`contract ${name} missing from chains/contracts/artifacts.json`);
  return { abi: a.abi as Abi, bytecode: a.bytecode };
}

export const forwarderFactory = artifact("ForwarderFactory");
export const forwarder = artifact("Forwarder");
/** Test-only tokens (chains/contracts/testing): never deploy outside a local chain. */
export const testToken = artifact("TestToken");
export const noReturnToken = artifact("NoReturnToken");

/** keccak256 of the forwarder's init code; the factory exposes the same as FORWARDER_INIT_CODE_HASH. */
export const forwarderInitCodeHash: Hex = keccak256(forwarder.bytecode);

/**
 * A customer's salt: keccak256 of the customer id. Deterministic, so the same customer gets the same
 * address from the same factory on every chain, and re-allocating never needs a lookup.
 */
export function depositSalt(customerId: string): Hex {
  return keccak256(stringToHex(customerId));
}

/** Where the factory's CREATE2 of the forwarder for `salt` lands (checksummed). */
export function depositAddressOf(factory: Address, salt: Hex): Address {
  return getContractAddress({
    opcode: "CREATE2",
    from: factory,
    salt,
    bytecodeHash: forwarderInitCodeHash,
  });
}
