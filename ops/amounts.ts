/**
 * Amounts are integers in base units: bigint in code, NUMERIC(78,0) in SQL, decimal strings in JSON.
 * These are the only conversions between them.
 */
const DECIMAL = /^(0|[1-9][0-9]*)$/;
export const MAX_UINT256 = (1n << 256n) - 1n;

/** Parse a decimal string of base units; throws on anything else (signs, fractions, exponents). */
export function parseAmount(value: string, field = "amount"): bigint {
  if (typeof value !== "string" || !DECIMAL.test(value)) {
    throw new TypeError(
      `${field} must be a non-negative integer in base units as a decimal string`,
    );
  }
  const amount = BigInt(value);
  if (amount > MAX_UINT256) throw new RangeError(`${field} exceeds uint256`);
  return amount;
}

export function formatAmount(value: bigint): string {
  return value.toString(10);
}

/** pg returns NUMERIC as string; this is the one place it becomes a bigint. */
export function amountFromDb(value: string | null | undefined): bigint {
  if (value === null || value === undefined) return 0n;
  return BigInt(value);
}
