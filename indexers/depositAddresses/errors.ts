import { BaseError } from "../../foundation/errors.js";

/** No ForwarderFactory is recorded for the chain: run `custody-node contracts deploy --chain X`. */
export class FactoryNotDeployedError extends BaseError {
  override name = "FactoryNotDeployedError";
  constructor(chainId: number) {
    super(`No deposit address factory is deployed on chain ${chainId}`, {
      code: "DEPOSIT_FACTORY_NOT_DEPLOYED",
      details: "run `custody-node contracts deploy --chain <key>` first",
      meta: { chain_id: chainId },
    });
  }
}

/**
 * The recorded factory deploys forwarders of another build than this one derives addresses with:
 * an address derived now would be one that factory can never deploy to (funds sent there lost).
 */
export class FactoryMismatchError extends BaseError {
  override name = "FactoryMismatchError";
  constructor(chainId: number, recorded: string, current: string) {
    super(
      `The deposit address factory on chain ${chainId} deploys another forwarder than this build`,
      {
        code: "DEPOSIT_FACTORY_MISMATCH",
        details:
          "the factory's recorded forwarder init code hash differs from this build's: run the build that deployed it, or deploy a factory for this one",
        meta: {
          chain_id: chainId,
          recorded_init_code_hash: recorded,
          build_init_code_hash: current,
        },
      },
    );
  }
}

/** The customer id cannot name a ledger account (`user:<id>`): 1-128 chars, no whitespace. */
export class InvalidCustomerIdError extends BaseError {
  override name = "InvalidCustomerIdError";
  constructor(customerId: string) {
    super("Invalid customer id", {
      code: "DEPOSIT_INVALID_CUSTOMER",
      details: "a customer id is 1 to 128 characters, no whitespace, and does not start with ':'",
      meta: { customer_id: customerId.slice(0, 200) },
    });
  }
}

export class UnknownChainError extends BaseError {
  override name = "UnknownChainError";
  constructor(chainId: number) {
    super(`Chain ${chainId} is not configured`, {
      code: "DEPOSIT_UNKNOWN_CHAIN",
      meta: { chain_id: chainId },
    });
  }
}
