/**
 * Configuration: infrastructure from the environment, chains/tokens/policies from one JSON file.
 * `loadConfig` is the only reader of `process.env`; it validates everything once and throws a
 * ConfigError naming every bad field.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { getAddress, isAddress } from "viem";
import { z } from "zod";
import { ConfigError, type FieldIssue } from "./errors.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const defaultConfigPath = path.join(repoRoot, "ops", "config.example.json");

const address = z
  .string()
  .refine((v) => isAddress(v, { strict: false }), "must be a 0x-prefixed 20-byte hex address")
  .transform((v) => getAddress(v));

const decimalString = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/, "must be a non-negative integer as a decimal string (base units)")
  .transform((v) => BigInt(v));

const url = z.string().url("must be a URL");

export const tokenSchema = z
  .object({
    address,
    symbol: z.string().min(1).max(16),
    decimals: z.number().int().min(0).max(36),
    /** Sweep a deposit address once its credited balance of this token reaches this (base units). */
    sweepThreshold: decimalString.optional(),
    /** Above this a hot wallet's balance is moved to the chain's cold address (base units). */
    hotCeiling: decimalString.optional(),
  })
  .strict();

export const confirmationRuleSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("blocks"), blocks: z.number().int().min(0).max(10_000) }).strict(),
  z.object({ kind: z.literal("finalized") }).strict(),
]);

export const chainSchema = z
  .object({
    /** Short stable name used on the CLI and in the API (`--chains local-a`). */
    key: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "must be lowercase letters, digits and dashes"),
    chainId: z.number().int().positive(),
    name: z.string().min(1),
    rpcUrls: z.array(url).min(1, "at least one RPC URL is required"),
    wsUrl: url.optional(),
    confirmations: confirmationRuleSchema,
    /**
     * When nothing can change any more (N blocks or the node's `finalized` tag); never shallower
     * than `confirmations`. Absent: see `finalityRule` (blocks = max(confirmations, reorgWindow),
     * or `finalized` when confirmations is). A reorg reaching a final block halts the chain.
     */
    finality: confirmationRuleSchema.optional(),
    /** Depth the indexer expects reorgs within; deeper ones are handled but alerted. */
    reorgWindow: z.number().int().min(1).max(100_000),
    blockTimeMs: z.number().int().positive(),
    feeModel: z.enum(["eip1559", "legacy"]),
    /**
     * Record internal value transfers (kind `internal`) from call traces. Only where the chain's
     * node serves `trace_block` or `debug_traceBlockByNumber` with callTracer; without it, native
     * deposits sent through contracts are found only by reconciliation (`unattributed_inflow`).
     */
    traces: z.boolean().default(false),
    /** Which trace method to use (absent or `auto`: trace_block, then debug_traceBlockByNumber). */
    tracesMethod: z.enum(["auto", "trace_block", "debug_traceBlockByNumber"]).optional(),
    nativeSymbol: z.string().min(1).max(16).default("ETH"),
    nativeDecimals: z.number().int().min(0).max(36).default(18),
    /**
     * Deposit crediting's catch-up pass: blocks below the crediting watermark re-read per periodic
     * sweep (a rotation over the history; absent: 1000), crediting confirmed deposits that skipped it.
     */
    creditingCatchupBlocks: z.number().int().min(1).max(1_000_000).optional(),
    /** Beyond this many blocks behind the head the indexer is `degraded` in /readyz (and alerted), not failed. */
    maxLagBlocks: z.number().int().positive().default(50),
    /**
     * Stored blocks kept below the published finalized block (audit trail; a reorg cannot reach
     * them); older ones are pruned. Absent: 10,000; never fewer than 2 × reorgWindow. Facts stay.
     */
    blockRetention: z.number().int().min(0).optional(),
    /** First block to index (backfill starts here on an empty database). */
    startBlock: z.number().int().min(0).default(0),
    /** Fee cap: no attempt is ever signed above this max fee per gas / gas price (wei). */
    maxFeePerGas: decimalString.default(500_000_000_000n),
    /** A transaction not mined after this long is replaced with bumped fees. */
    bumpIntervalMs: z.number().int().positive().default(30_000),
    /** Gas limit = eth_estimateGas + this many basis points (signer/gas.ts; absent: 2000 = 20%). */
    gasLimitMarginBps: z.number().int().min(0).max(100_000).optional(),
    /** No gas limit below this (absent: 21000); intrinsic gas is always the lower bound too. */
    gasLimitFloor: decimalString.optional(),
    /** L1 data cost charged outside gas: `op-stack` (Optimism, Base) or `none` (L1s, Arbitrum). */
    l1DataFee: z.enum(["none", "op-stack"]).optional(),
    /** Where value above a hot wallet's ceiling goes. */
    coldAddress: address.optional(),
    /** Native asset sweep threshold and hot ceiling (base units). */
    nativeSweepThreshold: decimalString.optional(),
    nativeHotCeiling: decimalString.optional(),
    /** Below this native balance a hot wallet needs funding (alerting only: custody_hot_wallet_floor_wei). */
    nativeHotFloor: decimalString.optional(),
    /** Deposit addresses per sweep transaction (one factory call); bounded by the block gas limit. */
    sweepBatchSize: z.number().int().min(1).max(500).default(50),
    /** How often the worker looks for deposit addresses to sweep and hot balances above ceiling. */
    sweepIntervalMs: z.number().int().positive().default(30_000),
    tokens: z.array(tokenSchema).default([]),
    /** Reconciliation's on-chain balance reads (ledger/recon/onchain.ts); absent: the defaults. */
    recon: z
      .object({
        /** Deposit addresses read per run beyond those with activity (the slow full rotation). */
        rotation: z.number().int().min(0).max(1_000_000).default(200),
        /** (address, asset) reads per request: one Multicall3 call or one JSON-RPC batch. */
        batchSize: z.number().int().min(1).max(5_000).default(500),
        /** Balance requests started per second at most (the provider's rate limit). */
        requestsPerSecond: z.number().positive().max(10_000).default(20),
        /** Multicall3 address where the chain registry knows none (absent: JSON-RPC batches). */
        multicall3: address.optional(),
      })
      .strict()
      .optional(),
    /** Proof of reserves (ledger/attest): on-chain attestations; absent: this chain is not attested. */
    attestation: z
      .object({
        /** Attest the newest clean reconciliation run's block when it is this many blocks past the last. */
        everyBlocks: z.number().int().min(1).max(10_000_000),
        /** How often the reconciler role looks whether an attestation is due. */
        intervalMs: z.number().int().min(1_000).max(86_400_000).default(60_000),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((chain, ctx) => {
    const problem = finalityProblem(chain);
    if (problem) ctx.addIssue({ code: "custom", path: ["finality"], message: problem });
  });

export type ConfirmationRule = z.output<typeof confirmationRuleSchema>;

/** Why a chain's explicit finality rule is shallower than its confirmation rule (null: fine). */
export function finalityProblem(chain: {
  confirmations: ConfirmationRule;
  finality?: ConfirmationRule | undefined;
}): string | null {
  const { confirmations, finality } = chain;
  if (!finality) return null;
  if (confirmations.kind === "finalized" && finality.kind === "blocks")
    return 'finality must be { kind: "finalized" } when confirmations is (it may not be shallower than confirmations)';
  if (confirmations.kind === "blocks" && finality.kind === "blocks") {
    if (finality.blocks < confirmations.blocks)
      return `finality (${finality.blocks} blocks) is shallower than confirmations (${confirmations.blocks} blocks)`;
    if (finality.blocks < 1) return "finality must be at least 1 block";
  }
  return null;
}

/**
 * The chain's finality rule (shared contract): the configured one, or by default
 * blocks = max(confirmations, reorgWindow), and the `finalized` tag when confirmations uses it.
 * Works on hand-built configs too (tests spread a parsed chain and change confirmations).
 */
export function finalityRule(
  chain: Pick<ChainConfig, "confirmations" | "reorgWindow"> & {
    finality?: ConfirmationRule | undefined;
  },
): ConfirmationRule {
  const problem = finalityProblem(chain);
  if (problem) throw new ConfigError([{ field: "finality", message: problem }]);
  if (chain.finality) return chain.finality;
  if (chain.confirmations.kind === "finalized") return { kind: "finalized" };
  return { kind: "blocks", blocks: Math.max(chain.confirmations.blocks, chain.reorgWindow, 1) };
}

export const hotWalletSchema = z
  .object({
    chain: z.string().min(1),
    /** KMS key id, ARN or alias (alias/…). No private key is ever configured. */
    kmsKeyId: z.string().min(1),
  })
  .strict();

export const policiesSchema = z
  .object({
    withdrawals: z
      .object({
        /** Destination allowlist applied to every customer (empty: any non-custody address). */
        globalAllowlist: z.array(address).default([]),
        /** Per-customer allowlists (customer id -> addresses). */
        customerAllowlists: z.record(z.string(), z.array(address)).default({}),
        /** Per-asset limits, keyed "chainId:tokenAddress" (native: zero address). */
        limits: z
          .record(
            z.string().regex(/^[0-9]+:0x[0-9a-fA-F]{40}$/, "key must be chainId:tokenAddress"),
            z
              .object({
                perTransaction: decimalString,
                rolling24h: decimalString,
                /** Above this amount, approvals are required. */
                approvalThreshold: decimalString,
              })
              .strict(),
          )
          .default({}),
        /** M distinct approvers required above the threshold. */
        requiredApprovals: z.number().int().min(1).max(10).default(2),
      })
      .strict()
      .default({ globalAllowlist: [], customerAllowlists: {}, limits: {}, requiredApprovals: 2 }),
  })
  .strict();

export const webhookSchema = z
  .object({
    url,
    /** Name of the environment variable holding the HMAC secret (secrets never live in the file). */
    secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/),
    events: z.array(z.string()).default(["*"]),
  })
  .strict();

const isLoopbackHttp = (u: URL) =>
  u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
/** https, or http on loopback only (a provider or console run on this machine, as tests do). */
const httpsUrl = url.refine((v) => {
  const u = new URL(v);
  return u.protocol === "https:" || isLoopbackHttp(u);
}, "must be an https URL (http only on 127.0.0.1, localhost or [::1])");

/**
 * Console sign-in through the company's OpenID Connect provider (api/console/oidc.ts,
 * docs/console.md). Absent: off, only API-key sign-in.
 */
export const consoleOidcSchema = z
  .object({
    /** The provider's issuer; its `/.well-known/openid-configuration` is read at first use. */
    issuer: httpsUrl,
    clientId: z.string().min(1),
    /**
     * Name of the environment variable holding the client secret (secrets never live in the file).
     * Absent: a public client (PKCE only, no client authentication).
     */
    clientSecretEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, "must be an environment variable name (A-Z, 0-9, _)")
      .optional(),
    /** Registered at the provider as the client's redirect URI; ends in /console/sso/callback. */
    redirectUrl: httpsUrl.refine(
      (v) => new URL(v).pathname.endsWith("/console/sso/callback"),
      "must end in /console/sso/callback (the console's callback route)",
    ),
    /** Scopes requested; must include `openid`, and whatever makes the provider send the claims. */
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, "must be one OAuth scope token"))
      .default(["openid", "email", "profile", "groups"])
      .refine((v) => v.includes("openid"), "must include openid"),
    /** The ID-token claim listing the person's groups (a string or an array of strings). */
    groupsClaim: z.string().min(1).default("groups"),
    /**
     * The person's identity as a key owner (`oidc:<value>`; approvals count distinct owners):
     * `email` (refused when `email_verified` is false) or `sub` (the provider's stable id).
     */
    ownerClaim: z.enum(["email", "sub"]).default("email"),
    /** Group name -> custody API scopes granted to its members (the union over their groups). */
    groups: z
      .record(
        z.string().min(1),
        z
          .array(z.string().regex(/^[a-z]+(:[a-z]+)?$/, "must be an API scope name"))
          .min(1, "give at least one scope"),
      )
      .refine((g) => Object.keys(g).length > 0, "map at least one group to scopes"),
    /** An OIDC session ends this long after sign-in however active (default 8 h; 5 min to 24 h). */
    absoluteTimeoutMs: z
      .number()
      .int()
      .min(300_000, "must be at least 300000 ms (5 min)")
      .max(86_400_000, "must be at most 86400000 ms (24 h)")
      .default(28_800_000),
  })
  .strict();

/** The /v1 API's own settings; the defaults are what every deployment got before they existed. */
export const DEFAULT_API_RATE_LIMIT = { max: 600, windowMs: 60_000 } as const;
export const apiConfigSchema = z
  .object({
    /** Requests per API key per window; over it the API answers 429 RATE_LIMITED (problem+json). */
    rateLimit: z
      .object({
        max: z.number().int().min(1).max(1_000_000).default(DEFAULT_API_RATE_LIMIT.max),
        windowMs: z
          .number()
          .int()
          .min(1_000, "must be at least 1000 ms")
          .max(3_600_000, "must be at most 3600000 ms (1 h)")
          .default(DEFAULT_API_RATE_LIMIT.windowMs),
      })
      .strict()
      .default({ ...DEFAULT_API_RATE_LIMIT }),
    /** The operator console at /console (api/console, docs/console.md). */
    console: z
      .object({
        /** A session unused this long ends (its key is revoked). */
        idleTimeoutMs: z
          .number()
          .int()
          .min(60_000, "must be at least 60000 ms (1 min)")
          .max(28_800_000, "must be at most 28800000 ms (8 h)")
          .default(900_000),
        /** Send the session cookie with `Secure`; default: only when the request came over https. */
        secureCookie: z.boolean().optional(),
        /** Sign-in through OpenID Connect (absent: off). */
        oidc: consoleOidcSchema.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const fileConfigSchema = z
  .object({
    chains: z.array(chainSchema).min(1, "at least one chain is required"),
    hotWallets: z.array(hotWalletSchema).default([]),
    policies: policiesSchema.default({
      withdrawals: {
        globalAllowlist: [],
        customerAllowlists: {},
        limits: {},
        requiredApprovals: 2,
      },
    }),
    webhooks: z.array(webhookSchema).default([]),
    api: apiConfigSchema.default({ rateLimit: { ...DEFAULT_API_RATE_LIMIT } }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const keys = new Set<string>();
    const ids = new Set<number>();
    cfg.chains.forEach((c, i) => {
      if (keys.has(c.key))
        ctx.addIssue({
          code: "custom",
          path: ["chains", i, "key"],
          message: `duplicate key ${c.key}`,
        });
      if (ids.has(c.chainId))
        ctx.addIssue({
          code: "custom",
          path: ["chains", i, "chainId"],
          message: `duplicate chain id ${c.chainId}`,
        });
      keys.add(c.key);
      ids.add(c.chainId);
    });
    cfg.hotWallets.forEach((w, i) => {
      if (!keys.has(w.chain))
        ctx.addIssue({
          code: "custom",
          path: ["hotWallets", i, "chain"],
          message: `unknown chain "${w.chain}" (known: ${[...keys].join(", ")})`,
        });
    });
  });

const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export const envSchema = z.object({
  DATABASE_URL: url.default("postgres://postgres@127.0.0.1:5432/custody"),
  REDIS_URL: url.default("redis://127.0.0.1:6379"),
  /** Prefix for every Redis key and BullMQ queue of this deployment (tests use one per worker). */
  // An optional leading `{hash tag}` puts every key of the deployment in one Redis Cluster slot
  // (BullMQ on clustered ElastiCache needs it): `{custody}`, `{custody}:prod`.
  REDIS_PREFIX: z
    .string()
    .regex(
      /^(\{[A-Za-z0-9_:-]+\})?[A-Za-z0-9_:-]*$/,
      "letters, digits, _ : - and an optional leading {hash tag}",
    )
    .refine((v) => v.length > 0, "must not be empty")
    .default("custody"),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  AWS_ENDPOINT_URL_KMS: url.optional(),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  LOG_LEVEL: logLevel.default("info"),
  /** `json` (default: one JSON object per line) or `pretty` (one readable line per entry, for humans). */
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
  CUSTODY_CONFIG: z.string().min(1).default(defaultConfigPath),
  /**
   * The config file's JSON itself, used instead of the CUSTODY_CONFIG file when set: how an ECS task
   * gets it from an SSM parameter (a container `secret`) without a file on the image (ops/infra).
   */
  CUSTODY_CONFIG_JSON: z.string().min(1).optional(),
  /** Seconds to finish in-flight work after SIGTERM before exiting anyway. */
  SHUTDOWN_TIMEOUT_S: z.coerce.number().positive().default(8),
});

export type ChainConfig = z.output<typeof chainSchema>;
export type TokenConfig = z.output<typeof tokenSchema>;
export type HotWalletConfig = z.output<typeof hotWalletSchema>;
export type PoliciesConfig = z.output<typeof policiesSchema>;
export type FileConfig = z.output<typeof fileConfigSchema>;
export type ApiConfig = z.output<typeof apiConfigSchema>;
export type EnvConfig = z.output<typeof envSchema>;
export type ConsoleOidcConfig = z.output<typeof consoleOidcSchema>;

export type Config = Readonly<{
  env: Readonly<EnvConfig>;
  chains: readonly ChainConfig[];
  hotWallets: readonly HotWalletConfig[];
  policies: PoliciesConfig;
  webhooks: FileConfig["webhooks"];
  /** Webhook secrets read from the env vars the file names. */
  webhookSecrets: Readonly<Record<string, string>>;
  configPath: string;
  /** The file's `api` section (absent in hand-built configs: the defaults apply). */
  api?: Readonly<ApiConfig>;
  /** The console OIDC client secret, read from the env var `api.console.oidc.clientSecretEnv` names. */
  consoleOidcClientSecret?: string;
}>;

function issuesOf(error: z.ZodError, prefix: string): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: [prefix, ...issue.path.map(String)].filter(Boolean).join("."),
    message: issue.message,
  }));
}

/** Validate a parsed config file object (used by loadConfig and by tests). */
export function parseFileConfig(raw: unknown, source = "config"): FileConfig {
  const result = fileConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(issuesOf(result.error, source));
  return result.data;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const issues: FieldIssue[] = [];
  const envResult = envSchema.safeParse(env);
  if (!envResult.success) {
    issues.push(...issuesOf(envResult.error, "").map((i) => ({ ...i, field: `env.${i.field}` })));
  }
  const inline = typeof env.CUSTODY_CONFIG_JSON === "string" && env.CUSTODY_CONFIG_JSON !== "";
  const configPath = inline
    ? "env:CUSTODY_CONFIG_JSON"
    : path.resolve(
        typeof env.CUSTODY_CONFIG === "string" && env.CUSTODY_CONFIG
          ? env.CUSTODY_CONFIG
          : defaultConfigPath,
      );
  let file: FileConfig | undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(inline ? String(env.CUSTODY_CONFIG_JSON) : readFileSync(configPath, "utf8"));
  } catch (error) {
    issues.push({
      field: inline ? "env.CUSTODY_CONFIG_JSON" : "env.CUSTODY_CONFIG",
      message: `cannot read JSON config ${configPath}: ${(error as Error).message}`,
    });
  }
  if (raw !== undefined) {
    const fileResult = fileConfigSchema.safeParse(raw);
    if (fileResult.success) file = fileResult.data;
    else issues.push(...issuesOf(fileResult.error, path.basename(configPath)));
  }
  const webhookSecrets: Record<string, string> = {};
  file?.webhooks.forEach((w, i) => {
    const secret = env[w.secretEnv];
    if (!secret)
      issues.push({
        field: `webhooks.${i}.secretEnv`,
        message: `environment variable ${w.secretEnv} is not set`,
      });
    else if (secret.startsWith("whsec_") && !/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret))
      issues.push({
        field: `webhooks.${i}.secretEnv`,
        message: `${w.secretEnv} starts with whsec_ (a Standard Webhooks secret) but is not base64 after the prefix`,
      });
    else webhookSecrets[w.secretEnv] = secret;
  });
  const oidcSecretEnv = file?.api.console?.oidc?.clientSecretEnv;
  const consoleOidcClientSecret = oidcSecretEnv ? env[oidcSecretEnv] : undefined;
  if (oidcSecretEnv && !consoleOidcClientSecret)
    issues.push({
      field: "api.console.oidc.clientSecretEnv",
      message: `environment variable ${oidcSecretEnv} is not set`,
    });
  if (issues.length > 0 || !envResult.success || !file) throw new ConfigError(issues);
  return deepFreeze({
    env: envResult.data,
    chains: file.chains,
    hotWallets: file.hotWallets,
    policies: file.policies,
    webhooks: file.webhooks,
    webhookSecrets,
    configPath,
    api: file.api,
    ...(consoleOidcClientSecret ? { consoleOidcClientSecret } : {}),
  });
}

/**
 * A config for one chain and nothing else (no hot wallets, no policies, no webhooks): what a
 * single-chain helper process (the kill -9 test's or the simulator's ingestor) runs with. The chain
 * is its config-file entry as JSON, validated like the file.
 */
export function oneChainConfig(
  env: NodeJS.ProcessEnv,
  chainJson: string | undefined,
  configPath: string,
): Config {
  return chainOnlyConfig(
    envSchema.parse(env),
    chainSchema.parse(JSON.parse(chainJson ?? "null")),
    configPath,
  );
}

/** oneChainConfig's config from a parsed env and chain (benches and scale tests build both). */
export function chainOnlyConfig(env: EnvConfig, chain: ChainConfig, configPath: string): Config {
  return deepFreeze({
    env,
    chains: [chain],
    hotWallets: [],
    policies: {
      withdrawals: {
        globalAllowlist: [],
        customerAllowlists: {},
        limits: {},
        requiredApprovals: 2,
      },
    },
    webhooks: [],
    webhookSecrets: {},
    configPath,
  });
}

export function chainByKey(config: Config, key: string): ChainConfig {
  const chain = config.chains.find((c) => c.key === key || String(c.chainId) === key);
  if (!chain) {
    throw new ConfigError([
      {
        field: "chains",
        message: `unknown chain "${key}" (known: ${config.chains.map((c) => c.key).join(", ")})`,
      },
    ]);
  }
  return chain;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
