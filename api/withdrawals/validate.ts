/**
 * Edge validation of a withdrawal request beyond its schema: the destination must be an EIP-55
 * checksummed address (a typo in a lowercase address cannot be caught, so we refuse it), not the
 * zero address; the amount a positive integer that fits uint256. Each failure names its field.
 */
import { getAddress, isAddress, zeroAddress } from "viem";
import { MAX_UINT256 } from "../../foundation/amounts.js";
import { InvalidFieldError } from "../errors.js";

/** Returns the lowercase address for storage. */
export function checkedDestination(to: string, field = "body.to"): string {
  if (!isAddress(to, { strict: false }))
    throw new InvalidFieldError("INVALID_ADDRESS", field, "not a 0x-prefixed 20-byte hex address");
  if (getAddress(to) !== to)
    throw new InvalidFieldError(
      "ADDRESS_NOT_CHECKSUMMED",
      field,
      `address must be EIP-55 checksummed (did you mean ${getAddress(to)}?)`,
    );
  if (to === zeroAddress)
    throw new InvalidFieldError("INVALID_ADDRESS", field, "the zero address cannot receive funds");
  return to.toLowerCase();
}

export function checkedAmount(amount: string, field = "body.amount"): bigint {
  if (!/^[0-9]+$/.test(amount))
    throw new InvalidFieldError(
      "AMOUNT_INVALID",
      field,
      "amount must be a positive integer in base units, as a decimal string",
    );
  const value = BigInt(amount);
  if (value <= 0n) throw new InvalidFieldError("AMOUNT_INVALID", field, "amount must be positive");
  if (value > MAX_UINT256)
    throw new InvalidFieldError("AMOUNT_INVALID", field, "amount exceeds uint256");
  return value;
}
