/**
 * The roles one `custody-node start` process can run, and the shape of a role's implementation.
 * Each module that owns a role exports its `RoleDefinition` value(s); ops/roles.ts lists them all
 * (the composition root). With no --roles, all run in one process.
 */
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type { Common } from "./common.js";
import type { ConfiguredChain } from "./config.js";
import type { Pool } from "./db.js";
import type { Health } from "./health.js";
import type { QueueFactory } from "./queues.js";

export const ROLE_NAMES = ["indexer", "worker", "signer", "api", "reconciler"] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

export type RoleContext = {
  common: Common;
  pool: Pool;
  /**
   * The process's blocking-capable connection (BullMQ workers). Producers never wait on it: they
   * ring with `queues.ring`, and other commands use `createFailFastRedis(redis)` (foundation/redis.ts).
   */
  redis: Redis;
  queues: QueueFactory;
  health: Health;
  /** The chains this process serves (--chains, default all configured). */
  chains: readonly ConfiguredChain[];
  /** Roles add Fastify plugins here before the server starts (the api role adds /v1). */
  httpPlugins: ((app: FastifyInstance) => Promise<void>)[];
};

/** A started role; `stop` stops intake and finishes or safely abandons in-flight work. */
export type RoleHandle = { stop: () => Promise<void> };

export type RoleDefinition = {
  name: RoleName;
  /** One line for --help. */
  description: string;
  start: (ctx: RoleContext) => Promise<RoleHandle>;
};

export function parseRoles(value: string | undefined): RoleName[] {
  if (!value) return [...ROLE_NAMES];
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !(ROLE_NAMES as readonly string[]).includes(n));
  if (bad.length > 0 || names.length === 0) {
    throw new Error(
      `--roles: unknown role(s) ${bad.join(", ") || "(none given)"}; valid: ${ROLE_NAMES.join(", ")}`,
    );
  }
  return [...new Set(names)] as RoleName[];
}
