/**
 * Amounts are integers in base units: bigint in code, NUMERIC(78,0) in SQL, decimal strings in JSON.
 * These are the only conversions between them.
 */
import { BaseError } from "./errors.js";

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

const INTEGER = /^-?[0-9]+$/;

/**
 * A NUMERIC as Postgres sends it, as a bigint: the type parser of every connection we open
 * (foundation/db.ts' PG_TYPES), so a reader gets `bigint` and converts nothing. A fraction, NaN or
 * an infinity throws DB_FRACTIONAL_NUMERIC (failing that query): cast such an expression in SQL.
 */
export function amountFromText(value: string): bigint {
  if (!INTEGER.test(value)) {
    throw new BaseError("A NUMERIC that is not an integer reached the amount parser", {
      code: "DB_FRACTIONAL_NUMERIC",
      details: `got ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}; cast the expression in SQL (::float8 for a measure, ::numeric(78,0) after rounding an amount)`,
    });
  }
  return BigInt(value);
}

/** What turns base units into token units for people: the asset's symbol and decimals. */
export type AssetUnits = { symbol: string; decimals: number };

/**
 * Base units as token units for people to read: `1,234.5 ETH`, `−0.25 USDC` (thousands grouped,
 * trailing zeros dropped, a real minus sign). The one formatter of the console and the
 * reconciliation report; the exact base units stay beside it (hover title, JSON, CSV). An asset
 * that is not listed (no decimals known) gives the base units unchanged.
 */
export function formatTokenAmount(value: bigint | string, asset: AssetUnits | undefined): string {
  const v = typeof value === "bigint" ? value : BigInt(value);
  if (!asset) return v.toString(10);
  if (!Number.isInteger(asset.decimals) || asset.decimals < 0 || asset.decimals > 77)
    throw new RangeError(`decimals must be an integer from 0 to 77, got ${asset.decimals}`);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const unit = 10n ** BigInt(asset.decimals);
  const whole = (abs / unit).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac =
    asset.decimals === 0
      ? ""
      : (abs % unit).toString().padStart(asset.decimals, "0").replace(/0+$/, "");
  return `${neg ? "−" : ""}${whole}${frac ? `.${frac}` : ""} ${asset.symbol}`;
}

const TOKEN_UNITS = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/**
 * A person's amount in token units (`1.5`, `100`, `0.000001`) as base units, for forms. No signs,
 * exponents, grouping or more decimals than the asset has: those throw, naming `field`.
 */
export function parseTokenAmount(text: string, decimals: number, field = "amount"): bigint {
  const m = TOKEN_UNITS.exec(typeof text === "string" ? text.trim() : "");
  if (!m)
    throw new TypeError(`${field} must be a number in token units like 1.5 (no sign or exponent)`);
  const fraction = (m[2] ?? "").replace(/0+$/, "");
  if (fraction.length > decimals)
    throw new RangeError(`${field} has more than ${decimals} decimals`);
  const units =
    BigInt(m[1]!) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, "0") || "0");
  if (units > MAX_UINT256) throw new RangeError(`${field} exceeds uint256`);
  return units;
}
