/**
 * The Fastify app. `buildApp(deps)` returns it without listening (tests use `app.inject()`);
 * ops/start.ts calls `listen`. The one error handler here is the only code that turns errors into
 * HTTP responses (problem+json with a stable code).
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from "fastify";
import type { Common } from "../ops/common.js";
import { BaseError } from "../ops/errors.js";
import type { Health } from "../ops/health.js";

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

/** Error code → HTTP status. Modules add their codes here as they land. */
export const errorStatus: Record<string, number> = {
  CONFIG_INVALID: 500,
};

export function problem(
  status: number,
  code: string,
  title: string,
  extra: Record<string, unknown> = {},
): Problem {
  return { type: `https://custody-node.local/errors/${code}`, title, status, code, ...extra };
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.common.logger.child({ component: "api" }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
  });

  app.setErrorHandler((error: FastifyError | BaseError | Error, request, reply) => {
    let body: Problem;
    if (error instanceof BaseError) {
      const status = errorStatus[error.code] ?? 400;
      body = problem(status, error.code, error.shortMessage, {
        ...(error.details ? { detail: error.details } : {}),
        ...error.meta,
      });
    } else if ((error as FastifyError).validation) {
      const fe = error as FastifyError;
      body = problem(400, "VALIDATION_FAILED", "Request validation failed", {
        detail: fe.message,
        errors: fe.validation?.map((v) => ({
          field: `${fe.validationContext ?? "body"}${v.instancePath.replaceAll("/", ".")}`,
          message: v.message,
        })),
      });
    } else if (
      typeof (error as FastifyError).statusCode === "number" &&
      (error as FastifyError).statusCode! < 500
    ) {
      const fe = error as FastifyError;
      body = problem(fe.statusCode!, fe.code ?? "BAD_REQUEST", fe.message);
    } else {
      request.log.error({ msg: "unhandled error", err: error });
      body = problem(500, "INTERNAL", "Internal error");
    }
    reply.status(body.status).type("application/problem+json").send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .status(404)
      .type("application/problem+json")
      .send(problem(404, "NOT_FOUND", `No route ${request.method} ${request.url}`));
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const result = await deps.health.run();
    reply.status(result.ok ? 200 : 503);
    return { status: result.ok ? "ready" : "not_ready", checks: result.checks };
  });
  app.get("/metrics", async (_request, reply) => {
    reply.type(deps.common.metrics.registry.contentType);
    return deps.common.metrics.registry.metrics();
  });

  for (const plugin of deps.plugins ?? []) await app.register(plugin);
  return app;
}
