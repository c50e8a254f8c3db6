/**
 * What one environment runs, derived from the custody config file alone (no AWS types): the ECS
 * services per role, each task's command, and the environment names every container gets. The CDK
 * stack (stack.ts) turns this into task definitions; the boot test runs the same commands locally.
 */

import { chainSchema } from "../../chains/index.js";
import { type FileConfig, parseFileConfig } from "../../foundation/config.js";
import type { RoleName } from "../../foundation/roles.js";

/**
 * The image runs `node ops/bin/custody-node.js <command…>` (Dockerfile, under an init so SIGTERM
 * reaches node); task definitions set only the command, which follows this prefix.
 */
export const IMAGE_ENTRY = ["node", "ops/bin/custody-node.js"] as const;

/** The port every role serves /healthz, /readyz and /metrics on (and the API, for `api`). */
export const SERVICE_PORT = 8080;

/** ECS stop timeout; the service's own SHUTDOWN_TIMEOUT_S stays below it so it exits first. */
export const STOP_TIMEOUT_S = 30;
export const SHUTDOWN_TIMEOUT_S = 25;

/** Redis key prefix with a hash tag: every key of the deployment lands in one cluster slot. */
export const REDIS_PREFIX = "{custody}";

export type ServicePlan = {
  /** Construct id and ECS service name suffix: `indexer-mainnet`, `api`. */
  id: string;
  role: RoleName;
  /** Chain keys this service serves (undefined: every configured chain). */
  chains?: string[];
  /** Tasks to run: lease-holding roles run two, one active and one standby. */
  desiredCount: number;
  scaling?:
    | { on: "cpu"; min: number; max: number }
    | { on: "queue-depth"; min: number; max: number };
  /** Behind the internal ALB (health check: /readyz). */
  loadBalanced: boolean;
  /** Its task role may sign with KMS: only the hot wallets of these chains. */
  signsFor: string[];
  command: string[];
  cpu: number;
  memoryMiB: number;
};

export type InfraPlan = {
  config: FileConfig;
  services: ServicePlan[];
  /** The scheduled one-shot reconciliation (EventBridge rule → Fargate task). */
  scheduledReconcile: { command: string[]; schedule: string };
  /** Runs before every task's main container (container dependency: exit 0). */
  migrateCommand: string[];
  /** Environment variables set in plain text on every container. */
  environment: Record<string, string>;
  /** Environment variables injected from Secrets Manager or SSM on every container. */
  secretNames: string[];
  /** KMS key aliases of the hot wallets, by chain key. */
  hotWalletAliases: Map<string, string[]>;
};

function startCommand(role: RoleName, chains?: string[]): string[] {
  return ["start", "--roles", role, ...(chains ? ["--chains", chains.join(",")] : [])];
}

export function planEnvironment(rawConfig: unknown): InfraPlan {
  const config = parseFileConfig(chainSchema, rawConfig, "infra config");
  const hotWalletAliases = new Map<string, string[]>();
  for (const [i, wallet] of config.hotWallets.entries()) {
    if (
      !/^alias\/[a-zA-Z0-9/_-]+$/.test(wallet.kmsKeyId) ||
      wallet.kmsKeyId.startsWith("alias/aws/")
    )
      throw new Error(
        `infra config hotWallets.${i}.kmsKeyId: must be a KMS alias (alias/…) the stack creates the key for, got "${wallet.kmsKeyId}"`,
      );
    hotWalletAliases.set(wallet.chain, [
      ...(hotWalletAliases.get(wallet.chain) ?? []),
      wallet.kmsKeyId,
    ]);
  }
  const services: ServicePlan[] = [];
  for (const chain of config.chains) {
    services.push({
      id: `indexer-${chain.key}`,
      role: "indexer",
      chains: [chain.key],
      desiredCount: 2,
      loadBalanced: false,
      signsFor: [],
      command: startCommand("indexer", [chain.key]),
      cpu: 1024,
      memoryMiB: 2048,
    });
  }
  for (const chain of config.chains) {
    if (!hotWalletAliases.has(chain.key)) continue;
    services.push({
      id: `signer-${chain.key}`,
      role: "signer",
      chains: [chain.key],
      desiredCount: 2,
      loadBalanced: false,
      signsFor: [chain.key],
      command: startCommand("signer", [chain.key]),
      cpu: 512,
      memoryMiB: 1024,
    });
  }
  services.push(
    {
      id: "worker",
      role: "worker",
      desiredCount: 2,
      scaling: { on: "queue-depth", min: 2, max: 10 },
      loadBalanced: false,
      signsFor: [],
      command: startCommand("worker"),
      cpu: 1024,
      memoryMiB: 2048,
    },
    {
      id: "api",
      role: "api",
      desiredCount: 2,
      scaling: { on: "cpu", min: 2, max: 8 },
      loadBalanced: true,
      signsFor: [],
      command: startCommand("api"),
      cpu: 512,
      memoryMiB: 1024,
    },
    {
      id: "reconciler",
      role: "reconciler",
      desiredCount: 1,
      loadBalanced: false,
      signsFor: [],
      command: startCommand("reconciler"),
      cpu: 1024,
      memoryMiB: 2048,
    },
  );
  return {
    config,
    services,
    scheduledReconcile: {
      command: ["reconcile", "--full", "--format", "json"],
      schedule: "cron(15 3 * * ? *)",
    },
    migrateCommand: ["migrate"],
    environment: {
      HOST: "0.0.0.0",
      PORT: String(SERVICE_PORT),
      LOG_LEVEL: "info",
      REDIS_PREFIX,
      SHUTDOWN_TIMEOUT_S: String(SHUTDOWN_TIMEOUT_S),
    },
    secretNames: [
      "DATABASE_URL",
      "REDIS_URL",
      "CUSTODY_CONFIG_JSON",
      ...new Set(config.webhooks.map((w) => w.secretEnv)),
    ],
    hotWalletAliases,
  };
}
