/**
 * The Fastify app. `buildApp(deps)` returns it without listening (tests use `app.inject()`);
 * ops/start.ts calls `listen`. The one error handler here is the only code that turns errors into
 * HTTP responses (problem+json with a stable code).
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from "fastify";
import type { Common } from "../foundation/common.js";
import { BaseError } from "../foundation/errors.js";
import type { Health } from "../foundation/health.js";

export type AppDeps = {
  common: Common;
  health: Health;
  /** Extra plugins (the /v1 API) registered by the roles that serve them. */
  plugins?: ((app: FastifyInstance) => Promise<void>)[];
};

export type Problem = {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  [key: string]: unknown;
};

/**
 * Error code → HTTP status, as docs/errors.md's table gives it (api/errorStatus.test.ts checks the
 * two agree). Modules add their codes here as they land; a code without a row is answered 500
 * (`statusOfError`).
 */
export const errorStatus: Record<string, number> = {
  // A module's check of a request value (api/schemas.ts' int64 bound): the handler's own code.
  VALIDATION_FAILED: 400,
  AUTH_REQUIRED: 401,
  AUTH_SCOPE_MISSING: 403,
  AUTH_SSO_GROUPS_STALE: 403,
  RATE_LIMITED: 429,
  AUTH_RATE_LIMITED: 429,
  IDEMPOTENCY_KEY_MISSING: 400,
  IDEMPOTENCY_KEY_INVALID: 400,
  IDEMPOTENCY_KEY_REUSED: 409,
  IDEMPOTENCY_IN_PROGRESS: 409,
  RESOURCE_NOT_FOUND: 404,
  PAGE_CURSOR_UNKNOWN: 400,
  UNKNOWN_CHAIN: 422,
  UNKNOWN_ASSET: 422,
  ASSET_AMBIGUOUS: 422,
  INVALID_ADDRESS: 422,
  ADDRESS_NOT_CHECKSUMMED: 422,
  DESTINATION_IS_CUSTODY: 422,
  DESTINATION_NOT_ALLOWED: 422,
  WITHDRAWAL_POLICY_MISSING: 422,
  AMOUNT_INVALID: 422,
  AMOUNT_ABOVE_LIMIT: 422,
  ROLLING_LIMIT_EXCEEDED: 422,
  INSUFFICIENT_AVAILABLE_BALANCE: 422,
  CUSTOMER_WITHDRAWALS_BLOCKED: 422,
  // A reorg reached a final block on the withdrawal's chain: until an operator resumes it.
  CHAIN_HALTED: 503,
  WITHDRAWAL_INVALID_STATE: 409,
  // An operator's failure the chain refuses (signer/operator.ts): one of the withdrawal's own
  // transactions used its nonce, another one did in a block not final yet, or no node can tell.
  SIGNER_REQUEST_MINED_ON_CHAIN: 409,
  SIGNER_NONCE_NOT_FINAL: 409,
  SIGNER_CHAIN_CHECK_UNAVAILABLE: 503,
  APPROVER_IS_REQUESTER: 403,
  APPROVER_PERSON_UNKNOWN: 403,
  ALREADY_DECIDED: 409,
  NO_HOT_WALLET: 503,
  DEAD_LETTER_NOT_FOUND: 404,
  WEBHOOK_REDRIVE_OUT_OF_ORDER: 409,
  NOT_REQUESTER: 403,
  RECON_RUN_NOT_FOUND: 404,
  RECON_BREAK_NOT_FOUND: 404,
  RECON_BLOCK_NOT_FINAL: 422,
  RECON_NO_FINAL_BLOCK: 503,
  RECON_BREAK_STATE: 409,
  RECON_BREAK_INPUT: 400,
  RECON_BREAK_FIX_UNKNOWN: 422,
  RECON_BREAK_FIX_ORPHANED: 422,
  TREASURY_MOVE_REFUSED: 422,
  DEPOSIT_FACTORY_NOT_DEPLOYED: 409,
  DEPOSIT_FACTORY_MISMATCH: 409,
  DEPOSIT_INVALID_CUSTOMER: 400,
  DEPOSIT_UNKNOWN_CHAIN: 400,
  RECON_INFLOW_NOT_CREDITABLE: 422,
  SIGNER_INVALID_REQUEST: 400,
  SIGNER_REQUEST_CONFLICT: 409,
  // The ledger's refusals (a withdrawal's hold, its post or void): a malformed transfer, a missing
  // account or hold, or a state conflict the same request cannot get past (a frozen account is
  // one, as an insufficient balance is).
  LEDGER_INVALID_TRANSFER: 400,
  LEDGER_UNKNOWN_ASSET: 400,
  LEDGER_INVALID_ACCOUNT: 400,
  LEDGER_ACCOUNT_NOT_FOUND: 404,
  LEDGER_PENDING_NOT_FOUND: 404,
  LEDGER_INSUFFICIENT_BALANCE: 409,
  LEDGER_EXCEEDS_DEBITS: 409,
  LEDGER_ACCOUNT_FROZEN: 409,
  LEDGER_PENDING_ALREADY_POSTED: 409,
  LEDGER_PENDING_ALREADY_VOIDED: 409,
  LEDGER_PENDING_EXPIRED: 409,
  LEDGER_EXCEEDS_PENDING_AMOUNT: 409,
  LEDGER_LINKED_EVENT_FAILED: 409,
  LEDGER_TRANSFER_EXISTS_MISMATCH: 409,
  LEDGER_ID_RACE: 503,
  // The chain's nodes failed (upstream), not the request: the same request may succeed on retry.
  CHAIN_RPC_UNAVAILABLE: 502,
  CHAIN_RPC_ERROR: 502,
  CHAIN_NO_HEALTHY_ENDPOINT: 502,
  CHAIN_DATA_INCONSISTENT: 502,
  CHAIN_BALANCE_UNKNOWN: 502,
};

/** Fastify's own client errors, renamed to stable codes (the field is the part of the request). */
export const fastifyErrors: Record<string, { code: string; status: number; field: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: "MALFORMED_JSON", status: 400, field: "body" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: "MALFORMED_JSON", status: 400, field: "body" },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: "BODY_TOO_LARGE", status: 413, field: "body" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: "UNSUPPORTED_MEDIA_TYPE", status: 415, field: "body" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: "MALFORMED_BODY", status: 400, field: "body" },
  // A QUERY request (RFC 10008) without a Content-Type: refused before routing, on any path.
  FST_ERR_ROUTE_MISSING_CONTENT_TYPE: {
    code: "CONTENT_TYPE_MISSING",
    status: 400,
    field: "headers.content-type",
  },
};

/**
 * The framework's other client errors a caller can reach, renamed to stable codes: those of the
 * API document's static assets (/docs, @fastify/static), by their code here, and in
 * `uncodedClientErrors` by status for the http-errors it sends without one (a conditional or
 * range request it cannot answer).
 */
export const frameworkClientErrors: Record<
  string,
  { code: string; status: number; title: string }
> = {
  FST_STATIC_FORBIDDEN_PATH: {
    code: "PATH_FORBIDDEN",
    status: 403,
    title: "The path is not canonical (an empty or dot segment, an alias of a file)",
  },
};
/** The framework's client errors that carry no code, by status (see `frameworkClientErrors`). */
export const uncodedClientErrors: Record<number, { code: string; status: number; title: string }> =
  {
    412: {
      code: "PRECONDITION_FAILED",
      status: 412,
      title: "A precondition of the request failed",
    },
    416: {
      code: "RANGE_NOT_SATISFIABLE",
      status: 416,
      title: "The requested range is not in the file",
    },
  };

export function problem(
  status: number,
  code: string,
  title: string,
  extra: Record<string, unknown> = {},
): Problem {
  const core = { type: `https://custody-node.local/errors/${code}`, title, status, code };
  // Extra facts never override the problem's own fields (an error's meta may say "status").
  return { ...core, ...extra, ...core };
}

/** The problems the error handler answers itself (not a BaseError's code), and their statuses. */
export const handlerStatus = {
  VALIDATION_FAILED: 400,
  INPUT_NOT_STORABLE: 400,
  DATABASE_UNAVAILABLE: 503,
  NOT_FOUND: 404,
  INTERNAL: 500,
  // /readyz (and, before the app serves, every path: ops/start.ts) while the roles start, and
  // /readyz while a check of the process's roles fails.
  SERVICE_STARTING: 503,
  SERVICE_NOT_READY: 503,
} as const;

export function handlerProblem(
  code: keyof typeof handlerStatus,
  title: string,
  extra: Record<string, unknown> = {},
): Problem {
  return problem(handlerStatus[code], code, title, extra);
}

/**
 * The status a BaseError's code is answered with. A code without one is not the caller's doing (a
 * module failed in a way the API has no answer for, e.g. DB_FRACTIONAL_NUMERIC): 500, so the caller
 * neither gives up on a request it should retry nor blames its own. The code stays in the problem.
 */
export function statusOfCode(code: string): number {
  return errorStatus[code] ?? 500;
}

/**
 * A BaseError's status. An unmapped one that names fields of the request (`errors[]`, the shape of
 * VALIDATION_FAILED) is a validation error: the request's fault, 400.
 */
function statusOfError(error: BaseError): number {
  if (errorStatus[error.code] === undefined && Array.isArray(error.meta.errors)) return 400;
  return statusOfCode(error.code);
}

/** Errors of the router itself (before any route or hook), as problems. */
export const frameworkErrorProblems: Record<
  string,
  { code: string; status: number; title: string }
> = {
  FST_ERR_BAD_URL: { code: "MALFORMED_URL", status: 400, title: "The URL is not valid" },
  FST_ERR_MAX_PARAM_LENGTH: {
    code: "URI_TOO_LONG",
    status: 414,
    title: "A path parameter is longer than any valid id",
  },
  FST_ERR_ASYNC_CONSTRAINT: { code: "BAD_REQUEST", status: 400, title: "Unroutable request" },
};

/** Postgres SQLSTATEs that a value from a request can cause: bad text, a number out of range. */
const inputDataErrors = new Set(["22021", "22P05", "22003", "22P02", "54000"]);
/** Errors meaning "Postgres cannot be reached now": the client should retry with the same key. */
const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

function isDatabaseUnavailable(error: Error & { code?: string }): boolean {
  if (error.code && unavailableCodes.has(error.code)) return true;
  // 57P01-03: admin shutdown, crash shutdown, cannot connect now; 53300: too many connections;
  // 08xxx: connection exceptions.
  if (error.code && /^(57P0[1-3]|53300|08...)$/.test(error.code)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
    error.message,
  );
}

/** Seconds a client should wait before retrying while the database is unreachable. */
export const DATABASE_RETRY_AFTER_S = 5;

/**
 * The first string (value or object key) in a request part that Postgres cannot store as text or
 * JSONB: a NUL character or a lone UTF-16 surrogate. Iterative, so a deeply nested body cannot
 * exhaust the stack.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const unsafeText = (s: string) => s.includes("\u0000") || LONE_SURROGATE.test(s);
export function findUnsafeText(root: unknown, context: string): string | undefined {
  const stack: [unknown, string][] = [[root, context]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === "string") {
      if (unsafeText(value)) return path;
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => {
        stack.push([v, `${path}.${i}`]);
      });
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        if (unsafeText(k)) return `${path}.${k}`;
        stack.push([v, `${path}.${k}`]);
      }
    }
  }
  return undefined;
}

/**
 * A stable operationId from method and path, for routes that do not name one: `GET
 * /v1/withdrawals/:id` → `getWithdrawalsById`, `POST /v1/withdrawals/:id/approve` →
 * `postWithdrawalsByIdApprove`. Generated clients get these as method names.
 */
export function operationIdOf(method: string, url: string): string {
  const pascal = (w: string) =>
    w
      .split(/[^A-Za-z0-9]+/)
      .filter(Boolean)
      .map((p) => p[0]!.toUpperCase() + p.slice(1))
      .join("");
  const parts = url
    .split("/")
    .filter((seg) => seg && seg !== "v1")
    .map((seg) => (seg.startsWith(":") ? `By${pascal(seg.slice(1))}` : pascal(seg)));
  return `${method.toLowerCase()}${parts.join("")}`;
}

/** The answer every operation can give to a malformed request (router, parser or schema). */
const ProblemSchema = {
  description: "application/problem+json with a stable `code`",
  type: "object",
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    code: { type: "string" },
    detail: { type: "string" },
  },
  required: ["type", "title", "status", "code"],
  additionalProperties: true,
} as const;

/** /readyz's 503 (SERVICE_STARTING, SERVICE_NOT_READY): a problem carrying every check's result. */
const ReadinessProblemSchema = {
  ...ProblemSchema,
  description:
    "application/problem+json: SERVICE_STARTING (the roles are starting) or SERVICE_NOT_READY " +
    "(a check fails); `checks` has each check's result",
  properties: {
    ...ProblemSchema.properties,
    checks: { type: "object", additionalProperties: true },
  },
} as const;

/** `body.amount`: the context plus the path, naming a missing or unknown property itself. */
function validationField(
  context: string,
  v: { instancePath: string; params: Record<string, unknown> },
): string {
  const named = v.params.missingProperty ?? v.params.additionalProperty;
  const path = `${context}${v.instancePath.replaceAll("/", ".")}`;
  return typeof named === "string" ? `${path}.${named}` : path;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.common.logger.child({ component: "api" }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // `api.trustProxy` (foundation/config.ts): which hops' X-Forwarded-For / -Proto to believe, so
    // `request.ip` (the failed-authentication limits of /v1 and the console's sign-in count per
    // address) is the client's, not the load balancer's. Default false: the connection's address.
    trustProxy: deps.common.config.api?.trustProxy ?? false,
    // Customer ids are up to 128 characters; percent-encoded, a non-ASCII one takes up to 12
    // bytes per character. Longer parameters are refused with 414 URI_TOO_LONG (problem+json).
    routerOptions: { maxParamLength: 2048 },
    frameworkErrors(error, _request, reply) {
      const known = frameworkErrorProblems[error.code] ?? {
        code: "BAD_REQUEST",
        status: 400,
        title: "Bad request",
      };
      (reply as unknown as FastifyReply)
        .status(known.status)
        .type("application/problem+json")
        .send(problem(known.status, known.code, known.title, { detail: error.message }));
    },
    ajv: {
      // Strict input: a number is not a decimal string, and unknown fields are errors, not
      // silently dropped (bad input must be named, never half-accepted).
      customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false },
    },
  });

  // Bodies are JSON (docs/errors.md: anything else is 415 UNSUPPORTED_MEDIA_TYPE). Fastify also
  // parses text/plain by default, which reached the schema as a string and was answered 400
  // VALIDATION_FAILED as if the JSON were wrong. The console adds its own form parser.
  app.removeContentTypeParser("text/plain");

  // One log line per request (Fastify's own request logging is off): method, route template,
  // status, duration and the API key's id; never headers, bodies or query values. Probes and
  // scrapes (health, readiness, metrics) log at debug so they do not drown the API's lines.
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? null;
    const line = {
      msg: "request",
      method: request.method,
      route,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      keyId: (request as { apiKey?: { id: string } | null }).apiKey?.id ?? null,
    };
    if (route === "/healthz" || route === "/readyz" || route === "/metrics")
      request.log.debug(line);
    else request.log.info(line);
  });

  // Every documented operation gets an operationId (SDK generators name methods after it).
  app.addHook("onRoute", (route) => {
    const schema = route.schema as Record<string, unknown> | undefined;
    if (!schema || schema.hide || schema.operationId) return;
    const method = Array.isArray(route.method) ? route.method[0]! : route.method;
    if (method === "HEAD") return;
    route.schema = { ...schema, operationId: operationIdOf(method, route.url) };
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      // Relative: the document describes the server that serves it (PORT, default 8080).
      servers: [{ url: "/", description: "the server serving this document" }],
      info: {
        title: "custody-node API",
        description:
          "Deposits, withdrawals, balances and webhooks. Every /v1 route needs an API key " +
          "(`Authorization: Bearer cn_…`) with the route's scope; every POST needs an " +
          "`Idempotency-Key`. Errors are application/problem+json with a stable `code`.",
        version: "1",
        license: {
          name: "UNLICENSED (private)",
          url: "https://docs.npmjs.com/cli/configuring-npm/package-json#license",
        },
      },
      components: {
        securitySchemes: { apiKey: { type: "http", scheme: "bearer" } },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.setErrorHandler((error: FastifyError | BaseError | Error, request, reply) => {
    let body: Problem;
    if (error instanceof BaseError) {
      const status = statusOfError(error);
      // Ours, not the caller's: logged with its stack, as INTERNAL is.
      if (status >= 500 && errorStatus[error.code] === undefined)
        request.log.error({ msg: "error code without an HTTP status", err: error });
      body = problem(status, error.code, error.shortMessage, {
        ...(error.details ? { detail: error.details } : {}),
        ...error.meta,
      });
    } else if ((error as FastifyError).validation) {
      const fe = error as FastifyError;
      body = handlerProblem("VALIDATION_FAILED", "Request validation failed", {
        detail: fe.message,
        errors: fe.validation?.map((v) => ({
          field: validationField(fe.validationContext ?? "body", v),
          message: v.message,
        })),
      });
    } else if (fastifyErrors[(error as FastifyError).code ?? ""]) {
      const known = fastifyErrors[(error as FastifyError).code!]!;
      body = problem(known.status, known.code, error.message, {
        errors: [{ field: known.field, message: error.message }],
      });
    } else if (
      typeof (error as FastifyError).statusCode === "number" &&
      (error as FastifyError).statusCode! < 500
    ) {
      const fe = error as FastifyError;
      const known =
        fe.code === undefined
          ? uncodedClientErrors[fe.statusCode!]
          : frameworkClientErrors[fe.code];
      if (known) body = problem(known.status, known.code, known.title, { detail: fe.message });
      else {
        // A framework refusal no table names: its status stands, its code (the framework's
        // internals, e.g. FST_ERR_…) is not one a client should match on. Logged to get a row.
        request.log.warn({ msg: "client error without a stable code", err: error });
        body = problem(fe.statusCode!, "BAD_REQUEST", fe.message, {
          ...(fe.code ? { framework_code: fe.code } : {}),
        });
      }
    } else if (inputDataErrors.has((error as { code?: string }).code ?? "")) {
      // A value the schema let through but Postgres cannot take: the request's fault, not ours.
      request.log.warn({ msg: "input refused by the database", err: error });
      body = handlerProblem("INPUT_NOT_STORABLE", "A value in the request cannot be stored", {
        detail: error.message,
      });
    } else if (isDatabaseUnavailable(error)) {
      request.log.warn({ msg: "database unavailable", err: error });
      reply.header("retry-after", String(DATABASE_RETRY_AFTER_S));
      body = handlerProblem("DATABASE_UNAVAILABLE", "The database cannot be reached; retry later", {
        detail: `retry after ${DATABASE_RETRY_AFTER_S} s with the same Idempotency-Key`,
      });
    } else {
      request.log.error({ msg: "unhandled error", err: error });
      body = handlerProblem("INTERNAL", "Internal error");
    }
    reply.status(body.status).type("application/problem+json").send(body);
  });

  // NUL and lone surrogates are refused before schema validation, for every route and every
  // text field (values and keys), with the schema's own problem shape naming the field.
  app.addHook("preValidation", async (request) => {
    // A POST sent with no body (no Content-Type, no length): Fastify validates `undefined`
    // against the route's object schema, and a route whose fields are all optional (approve,
    // reject, cancel, redrive) refused it 400 "body must be object". No body sends no fields, so
    // it is validated and handled as `{}` (a route that needs fields names the first missing one).
    if (request.body === undefined && request.routeOptions.schema?.body) request.body = {};
    for (const [part, context] of [
      [request.params, "params"],
      [request.query, "querystring"],
      [request.body, "body"],
    ] as const) {
      const field = findUnsafeText(part, context);
      if (field)
        throw Object.assign(new Error(`${field} contains a NUL character or a lone surrogate`), {
          statusCode: 400,
          validationContext: context,
          validation: [
            {
              instancePath: field.slice(context.length).replaceAll(".", "/"),
              params: {},
              message: "must not contain a NUL character or a lone UTF-16 surrogate",
            },
          ],
        });
    }
  });

  app.setNotFoundHandler((request, reply) => {
    const body = handlerProblem("NOT_FOUND", `No route ${request.method} ${request.url}`);
    reply.status(body.status).type("application/problem+json").send(body);
  });

  const open = (
    summary: string,
    ok: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ) => ({
    schema: {
      tags: ["health"],
      summary,
      // Probes and scrapers call these without a key.
      security: [],
      // 500: a check or the metrics registry throwing (INTERNAL, from the one error handler).
      response: { 200: ok, 400: ProblemSchema, 500: ProblemSchema, ...extra },
    },
  });
  const Status = {
    description: "status",
    type: "object",
    properties: { status: { type: "string" } },
    additionalProperties: true,
  };
  app.get("/healthz", open("Liveness: the process answers", Status), async () => ({
    status: "ok",
  }));
  app.get(
    "/readyz",
    open("Readiness: every check of this process's roles passes (503 otherwise)", Status, {
      503: ReadinessProblemSchema,
    }),
    async (_request, reply) => {
      const result = await deps.health.run();
      if (result.ok) return { status: "ready", checks: result.checks };
      // A 503 is a problem like every other error the service answers; the checks stay in it.
      const failing = Object.entries(result.checks).filter(([, c]) => !c.ok);
      const body = handlerProblem("SERVICE_NOT_READY", "A readiness check of this process fails", {
        detail: `failing: ${failing.map(([name]) => name).join(", ")}`,
        checks: result.checks,
      });
      return (reply as FastifyReply)
        .status(body.status)
        .type("application/problem+json")
        .send(body);
    },
  );
  app.get(
    "/metrics",
    open("Prometheus metrics (text exposition format)", {
      description: "metrics in the Prometheus text format",
      type: "string",
    }),
    async (_request, reply) => {
      reply.type(deps.common.metrics.registry.contentType);
      return deps.common.metrics.registry.metrics();
    },
  );

  for (const plugin of deps.plugins ?? []) await app.register(plugin);
  return app;
}
