/**
 * TypeBox schemas shared by the /v1 routes (they also generate the OpenAPI document). Amounts are
 * decimal strings of base units; addresses are EIP-55 checksummed in and out.
 */
import { Type } from "@fastify/type-provider-typebox";
import { InvalidFieldError } from "./errors.js";

/** A uint256 as a decimal string (78 digits at most; the value is checked where it is parsed). */
const BASE_UNITS_PATTERN = "^[0-9]{1,78}$";

export const Amount = Type.String({
  pattern: BASE_UNITS_PATTERN,
  description: "integer amount in base units, as a decimal string",
  examples: ["1000000000000000000"],
});

/** An amount in base units inside a response (the same pattern as Amount, a shorter description). */
export const BaseUnits = Type.String({ pattern: BASE_UNITS_PATTERN, description: "base units" });

export const Address = Type.String({
  pattern: "^0x[0-9a-fA-F]{40}$",
  description: "EIP-55 checksummed address",
});

export const AssetId = Type.String({
  pattern: "^[0-9]{1,20}:0x[0-9a-fA-F]{40}$",
  description: "`<chainId>:<token address>`; native = zero address",
});

/** Same rule as the ledger's `user:<id>` accounts and deposit allocation. */
export const CustomerId = Type.String({
  pattern: "^[^\\s:][^\\s]{0,127}$",
  description: "the exchange's customer id: 1-128 characters, no whitespace, not starting with ':'",
});

export const ChainRef = Type.String({
  pattern: "^[a-z0-9][a-z0-9-]{0,63}$|^[0-9]{1,20}$",
  description: "chain key (`local-a`) or chain id (`31337`)",
});

export const Uuid = Type.String({
  pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
});

export const Limit = Type.Optional(
  Type.String({ pattern: "^(?:[1-9][0-9]{0,2}|1000)$", description: "page size, 1-1000" }),
);

const problemFields = {
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.String(),
  detail: Type.Optional(Type.String()),
  errors: Type.Optional(
    Type.Array(Type.Object({ field: Type.String(), message: Type.Optional(Type.String()) })),
  ),
};

/** A problem answer; `description` is the response's in the OpenAPI document. */
const problemOf = (description: string, options: Record<string, unknown> = {}) =>
  Type.Object(problemFields, { additionalProperties: true, description, ...options });

export const Problem = problemOf("application/problem+json");

export const IdempotencyHeaders = Type.Object({
  "idempotency-key": Type.String({
    minLength: 1,
    maxLength: 200,
    description: "unique per intended operation; a repeat returns the first response",
  }),
});

export const problemResponses = {
  400: Problem,
  401: Problem,
  403: Problem,
  404: Problem,
  409: Problem,
  422: Problem,
  // Both are sent with Retry-After (api/auth.ts, @fastify/rate-limit in api/v1.ts).
  429: problemOf(
    "application/problem+json: RATE_LIMITED (too many requests for this API key in the window) " +
      "or AUTH_RATE_LIMITED (too many failed authentications from this address); retry after " +
      "Retry-After",
    {
      headers: {
        "retry-after": {
          type: "integer",
          minimum: 0,
          description: "seconds to wait before retrying",
        },
      },
    },
  ),
  // The service or an upstream failing, not the request (docs/errors.md): a client retries these
  // with the same request (and Idempotency-Key), so generated clients must know them.
  500: problemOf(
    "application/problem+json: INTERNAL (an unexpected error), or a coded error the API has no " +
      "status for (its code kept); report it",
  ),
  502: problemOf(
    "application/problem+json: the chain's RPC nodes failed (CHAIN_RPC_UNAVAILABLE, " +
      "CHAIN_RPC_ERROR, CHAIN_NO_HEALTHY_ENDPOINT, CHAIN_DATA_INCONSISTENT, " +
      "CHAIN_BALANCE_UNKNOWN); retry the same request",
  ),
  503: problemOf(
    "application/problem+json: not available now: DATABASE_UNAVAILABLE (with Retry-After), " +
      "NO_HOT_WALLET, RECON_NO_FINAL_BLOCK, SIGNER_CHAIN_CHECK_UNAVAILABLE, LEDGER_ID_RACE, " +
      "CHAIN_HALTED (the withdrawal's chain, until an operator resumes it), " +
      "SERVICE_STARTING (the process is starting its roles; /readyz also answers " +
      "SERVICE_NOT_READY); " +
      "retry the same request with the same Idempotency-Key",
    {
      headers: {
        "retry-after": {
          type: "integer",
          minimum: 0,
          description: "seconds to wait before retrying (sent with DATABASE_UNAVAILABLE)",
        },
      },
    },
  ),
} as const;

export function pageLimit(limit: string | undefined, fallback = 100): number {
  return limit === undefined ? fallback : Number(limit);
}

/**
 * A page's `after` must name a row of the list's table (the last one of the page before). One that
 * names none (mistyped, cut short, from another deployment) would page to nothing: the answer the
 * list's end gives, so a client would stop as if it had read everything. Refused instead, naming
 * the field. A row the filters now leave out (its state moved on since) still names a place in the
 * order, so `exists` asks the table, not the filtered list.
 */
export async function requirePageCursor(
  after: string | undefined,
  exists: (after: string) => Promise<boolean>,
  cursor: { field: string; send: string } = {
    field: "querystring.after",
    send: "the last id of the previous page",
  },
): Promise<void> {
  if (after !== undefined && !(await exists(after)))
    throw new InvalidFieldError(
      "PAGE_CURSOR_UNKNOWN",
      cursor.field,
      `names no row of this list: send ${cursor.send}`,
    );
}

export const INT64_MAX = 9223372036854775807n;

/** A cursor or id that Postgres keeps as BIGINT: 1-19 digits in the schema, at most int64 here. */
export const Int64Text = (description: string) =>
  Type.String({ pattern: "^[0-9]{1,19}$", maxLength: 19, description: `${description} (int64)` });

export function int64Text(value: string, field: string): string {
  if (BigInt(value) > INT64_MAX)
    throw new InvalidFieldError("VALIDATION_FAILED", field, `must be at most ${INT64_MAX} (int64)`);
  return value;
}
