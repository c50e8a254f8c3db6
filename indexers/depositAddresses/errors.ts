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
