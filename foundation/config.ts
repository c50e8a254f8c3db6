/**
 * Configuration: infrastructure from the environment, chains/tokens/policies from one JSON file.
 * `loadConfig` is the only reader of `process.env`; it validates everything once and throws a
 * ConfigError naming every bad field. A chain entry's schema is chains/'s (chains/config.ts): the
 * caller passes it in (`loadConfig(chainSchema)`), so foundation imports nothing of ours.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { getAddress, isAddress } from "viem";
import { z } from "zod";
import { ConfigError, type FieldIssue } from "./errors.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const defaultConfigPath = path.join(repoRoot, "ops", "config.example.json");

/**
 * Why a config address is refused, or undefined when it is taken. A mixed-case address must match
 * its EIP-55 checksum (viem's `isAddress` strict): one mistyped character in a cold address, a
 * token or an allowlist entry would otherwise send funds to an address nobody owns. All lowercase
 * has no checksum to check and is taken (all uppercase is mixed-case to viem: refused unless it
 * happens to be the checksum). The checksummed spelling is not suggested: it is the typo's.
 */
export function configAddressProblem(v: string): string | undefined {
  if (!isAddress(v, { strict: false })) return "must be a 0x-prefixed 20-byte hex address";
  if (!isAddress(v, { strict: true }))
    return "mixed-case address whose EIP-55 checksum does not match: a mistyped character? Check it against its source and write it checksummed (or all lowercase)";
  return undefined;
}

/** Config field schemas every section uses (chains/config.ts's too). */
export const addressSchema = z
  .string()
  .superRefine((v, ctx) => {
    const problem = configAddressProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .transform((v) => getAddress(v));
const address = addressSchema;

export const decimalStringSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/, "must be a non-negative integer as a decimal string (base units)")
  .transform((v) => BigInt(v));
const decimalString = decimalStringSchema;

export const urlSchema = z.string().url("must be a URL");
const url = urlSchema;

/** What foundation reads of a chain entry: the file's cross-chain checks and `chainByKey`. */
export type ChainBase = { key: string; chainId: number };

/**
 * Where chains/config.ts registers its ChainConfig by declaration merging
 * (`declare module "../foundation/config.js" { interface ConfigChainRegistry { chain: ChainConfig } }`),
 * the way fastify's decorators are typed: `Config.chains` is then chains/'s ChainConfig in every
 * module, while this file never imports it.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by chains/config.ts (declaration merging)
export interface ConfigChainRegistry {}

/** A configured chain: chains/'s ChainConfig once registered (always, in this program). */
export type ConfiguredChain = ConfigChainRegistry extends { chain: infer C extends ChainBase }
  ? C
  : ChainBase;

/** The schema of one `chains[]` entry (chains/config.ts's `chainSchema`), given by the caller. */
export type ChainSchema = z.ZodType<ConfiguredChain, unknown>;

export const hotWalletSchema = z
  .object({
    chain: z.string().min(1),
    /** KMS key id, ARN or alias (alias/…). No private key is ever configured. */
    kmsKeyId: z.string().min(1),
    /**
     * The address the key signs for (`custody-node keys address <key>`). The api, which has no
     * KMS access, knows the wallet that takes new withdrawals by it; the signer refuses a key
     * whose address differs, so no withdrawal is recorded with an address nothing signs for.
     */
    address: address.optional(),
    /**
     * Rotation (docs/deploy.md, "Rotating a hot wallet's key"): takes no new withdrawals. Its signer still
     * sends, bumps and follows what it was given (and sweeps, if the ForwarderFactory is its).
     */
    retiring: z.boolean().optional(),
  })
  .strict();

/**
 * The chain's hot wallet for new withdrawals: the first in `hotWallets[]` not retiring. Its address
 * when the config gives it; `undefined` when the config gives none for the chain, or a first
 * active one without an address (then the first registered hot wallet, as before rotation
 * existed; the schema refuses that on a chain with a retiring wallet).
 */
export function activeHotWalletAddress(
  hotWallets: readonly z.output<typeof hotWalletSchema>[],
  chainKey: string,
): string | undefined {
  return hotWallets.find((w) => w.chain === chainKey && !w.retiring)?.address?.toLowerCase();
}

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
          .superRefine((limits, ctx) => {
            // Keys are matched without case (api/withdrawals/policy.ts): two spellings of one
            // asset would leave which limits apply to the order of the file.
            const seen = new Map<string, string>();
            for (const key of Object.keys(limits)) {
              // The key's token address is checked like every other config address.
              const problem = configAddressProblem(key.slice(key.indexOf(":") + 1));
              if (problem) ctx.addIssue({ code: "custom", path: [key], message: problem });
              const other = seen.get(key.toLowerCase());
              if (other !== undefined)
                ctx.addIssue({
                  code: "custom",
                  path: [key],
                  message: `the same asset as "${other}" (keys are compared without case): keep one`,
                });
              seen.set(key.toLowerCase(), key);
            }
          })
          .default({}),
        /** M distinct approvers required above the threshold. */
        requiredApprovals: z.number().int().min(1).max(10).default(2),
      })
      .strict()
      .default({ globalAllowlist: [], customerAllowlists: {}, limits: {}, requiredApprovals: 2 }),
  })
  .strict();

/**
 * The webhook event types the service sends (api/webhooks/events.ts emits them). Here, with the
 * config that names them, so a misspelt name in an endpoint's `events` is refused at start: it
 * matched nothing and the endpoint silently never heard of those events.
 */
export const WEBHOOK_EVENT_TYPES = [
  "deposit.detected",
  "deposit.confirmed",
  "deposit.credited",
  "deposit.orphaned",
  "deposit.reorg_held",
  "deposit.reorg_restored",
  "deposit.reorg_reversed",
  "inflow.credited",
  "withdrawal.approved",
  "withdrawal.broadcast",
  "withdrawal.confirmed",
  "withdrawal.reorged",
  "withdrawal.finalized",
  "withdrawal.receipt_unknown",
  "withdrawal.needs_review",
  "withdrawal.fail_requested",
  "withdrawal.failed",
  "withdrawal.failure_undone",
  "withdrawal.rejected",
  "withdrawal.cancelled",
] as const;
/** The events that tell a backend a credited deposit's credit was held, restored or reversed. */
const CREDIT_TAKEN_BACK_BY = [
  "deposit.reorg_held",
  "deposit.reorg_restored",
  "deposit.reorg_reversed",
] as const;
/**
 * The events that undo a withdrawal's `withdrawal.confirmed` (a reorg takes it back to broadcast)
 * and end it otherwise after one (it fails, the customer has the money again).
 */
const CONFIRMATION_UNDONE_BY = ["withdrawal.reorged", "withdrawal.failed"] as const;
/**
 * The event that undoes a withdrawal's `withdrawal.failed` (a deep reorg an operator accepted took
 * the failure's final block away: back to broadcast, held again).
 */
const FAILURE_UNDONE_BY = ["withdrawal.failure_undone"] as const;
const webhookEventPatterns = new Set<string>([
  "*",
  ...WEBHOOK_EVENT_TYPES,
  ...WEBHOOK_EVENT_TYPES.map((t) => `${t.split(".")[0]}.*`),
]);

export const webhookSchema = z
  .object({
    url,
    /** Name of the environment variable holding the HMAC secret (secrets never live in the file). */
    secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/),
    events: z
      .array(
        z
          .string()
          .refine(
            (e) => webhookEventPatterns.has(e),
            `must be *, deposit.*, inflow.*, withdrawal.* or one of ${WEBHOOK_EVENT_TYPES.join(", ")}`,
          ),
      )
      .default(["*"]),
  })
  .strict()
  .superRefine((w, ctx) => {
    // A backend told a deposit was credited must be told when a reorg takes the credit back (held,
    // then restored or reversed): subscribed to `deposit.credited` alone, it would keep crediting
    // the customer for a deposit the chain dropped and the ledger holds back.
    const wants = (type: string) =>
      w.events.some((e) => e === "*" || e === type || e === `${type.split(".")[0]}.*`);
    const creditMissing = wants("deposit.credited")
      ? CREDIT_TAKEN_BACK_BY.filter((type) => !wants(type))
      : [];
    if (creditMissing.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["events"],
        message: `deposit.credited without the events that take a credit back: add ${creditMissing.join(", ")} (or deposit.*)`,
      });
    // Likewise a backend told a withdrawal was confirmed must be told when a reorg undoes it, and
    // how it ends then: it would keep the withdrawal paid while the customer has the money again.
    const confirmedMissing = wants("withdrawal.confirmed")
      ? CONFIRMATION_UNDONE_BY.filter((type) => !wants(type))
      : [];
    if (confirmedMissing.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["events"],
        message: `withdrawal.confirmed without the events that undo it: add ${confirmedMissing.join(", ")} (or withdrawal.*)`,
      });
    // And one told a withdrawal failed (that gave the customer the money back) must be told when
    // a deep reorg undoes the failure: it would keep the refund while the payment may be mined.
    const failedMissing = wants("withdrawal.failed")
      ? FAILURE_UNDONE_BY.filter((type) => !wants(type))
      : [];
    if (failedMissing.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["events"],
        message: `withdrawal.failed without the event that undoes it: add ${failedMissing.join(", ")} (or withdrawal.*)`,
      });
  });

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
     * The person's identity as a key owner (`oidc:<value>`; approvals count distinct persons):
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
    /**
     * How long the provider's word on a person's groups (given at sign-in) lets an SSO session act:
     * past it, the session keeps only its `:read` scopes until the person signs in again, so a
     * person removed from a group at the provider approves nothing more after this (default 5 min;
     * 1 min to 24 h).
     */
    groupsFreshForMs: z
      .number()
      .int()
      .min(60_000, "must be at least 60000 ms (1 min)")
      .max(86_400_000, "must be at most 86400000 ms (24 h)")
      .default(300_000),
  })
  .strict();

/** proxy-addr's names for address ranges (Fastify's `trustProxy` list accepts them too). */
const PROXY_RANGE_NAMES = ["loopback", "linklocal", "uniquelocal"];
/** An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`), or one of `PROXY_RANGE_NAMES`. */
const trustedProxy = z.string().refine(
  (v) => {
    if (PROXY_RANGE_NAMES.includes(v)) return true;
    const [ip = "", bits, ...rest] = v.split("/");
    const family = isIP(ip);
    if (family === 0 || rest.length > 0) return false;
    if (bits === undefined) return true;
    return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
  },
  `must be an IP address, a CIDR range (10.0.0.0/8) or one of ${PROXY_RANGE_NAMES.join(", ")}`,
);

/**
 * Which hops in front of the api role to believe about the client (Fastify's `trustProxy`): its
 * address from `X-Forwarded-For`, its protocol from `X-Forwarded-Proto`. The address is what the
 * failed-authentication limits (/v1 and the console's sign-in) count per client; behind a load
 * balancer without this, they count the balancer, so one client's failures lock out everyone.
 * `false` (default): the connection's address. A list: the balancers' addresses or ranges (the
 * safe choice: a forwarded header from anyone else is ignored). `true`: every hop, so the client
 * names itself: only when nothing else can reach the port. No hop count: Fastify (5.12) takes a
 * number and then trusts no hop at all (it cannot check the connection's peer), so a number would
 * look configured and change nothing; it is refused.
 */
export const trustProxySchema = z.union(
  [z.boolean(), z.array(trustedProxy).min(1, "must list at least one address (or be false)")],
  {
    error: () =>
      "must be false, true or a list of the proxies' addresses/CIDR ranges (a number of hops is not taken: Fastify 5.12 trusts no hop for one)",
  },
);

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
    /** Trusted proxies in front of the api role (`trustProxySchema`); default false. */
    trustProxy: trustProxySchema.default(false),
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

/** The config file's schema around the caller's chain schema (chains/config.ts). */
export function makeFileConfigSchema(chainSchema: ChainSchema) {
  return z
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
      api: apiConfigSchema.default({ rateLimit: { ...DEFAULT_API_RATE_LIMIT }, trustProxy: false }),
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
      const wallets = new Set<string>();
      cfg.hotWallets.forEach((w, i) => {
        const wallet = `${w.chain}\u0000${w.kmsKeyId}`;
        if (wallets.has(wallet))
          ctx.addIssue({
            code: "custom",
            path: ["hotWallets", i, "kmsKeyId"],
            message: `hot wallet ${w.kmsKeyId} is listed twice on chain "${w.chain}"`,
          });
        wallets.add(wallet);
        // Which wallet takes new withdrawals must be certain once one is retiring: the api knows
        // it only by the address (it never reads KMS), and the registered-first fallback would be
        // the wallet being retired.
        const firstRetiring = cfg.hotWallets.findIndex((o) => o.chain === w.chain && o.retiring);
        if (firstRetiring === i) {
          const active = cfg.hotWallets.find((o) => o.chain === w.chain && !o.retiring);
          if (!active)
            ctx.addIssue({
              code: "custom",
              path: ["hotWallets", i, "retiring"],
              message: `every hot wallet of chain "${w.chain}" is retiring: new withdrawals would have no wallet`,
            });
          else if (!active.address)
            ctx.addIssue({
              code: "custom",
              path: ["hotWallets", cfg.hotWallets.indexOf(active), "address"],
              message: `chain "${w.chain}" has a retiring hot wallet: the wallet that takes new withdrawals (${active.kmsKeyId}) must give its address`,
            });
        }
        if (!keys.has(w.chain))
          ctx.addIssue({
            code: "custom",
            path: ["hotWallets", i, "chain"],
            message: `unknown chain "${w.chain}" (known: ${[...keys].join(", ")})`,
          });
      });
    });
}

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
  /**
   * The KMS endpoint is the local emulator though not on loopback (e.g. a container name), so the
   * KMS client uses dummy credentials (signer/kmsAccount.ts isKmsEmulatorEndpoint). `1`/`true`:
   * yes; unset, empty, `0`/`false`: no. Anything else is a typo that would silently mean "real
   * KMS", so it is refused.
   */
  KMS_EMULATOR: z
    .enum(["", "0", "1", "false", "true"])
    .optional()
    .transform((v) => v === "1" || v === "true"),
  /**
   * Seconds between the signer's DescribeKey checks of every configured hot wallet key
   * (signer/kmsKeyState.ts): a key disabled or scheduled for deletion is seen while idle.
   */
  KMS_KEY_CHECK_INTERVAL_S: z.coerce.number().int().min(1).max(3600).default(300),
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
  /**
   * Seconds a service connection may sit in an open transaction sending nothing before Postgres
   * ends its session, freeing its row locks (foundation/db.ts); 0: never.
   */
  PG_IDLE_IN_TRANSACTION_TIMEOUT_S: z.coerce.number().min(0).default(60),
});

export type HotWalletConfig = z.output<typeof hotWalletSchema>;
export type PoliciesConfig = z.output<typeof policiesSchema>;
export type FileConfig = z.output<ReturnType<typeof makeFileConfigSchema>>;
export type ApiConfig = z.output<typeof apiConfigSchema>;
export type EnvConfig = z.output<typeof envSchema>;
export type ConsoleOidcConfig = z.output<typeof consoleOidcSchema>;

export type Config = Readonly<{
  env: Readonly<EnvConfig>;
  chains: readonly ConfiguredChain[];
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
export function parseFileConfig(
  chainSchema: ChainSchema,
  raw: unknown,
  source = "config",
): FileConfig {
  const result = makeFileConfigSchema(chainSchema).safeParse(raw);
  if (!result.success) throw new ConfigError(issuesOf(result.error, source));
  return result.data;
}

export function loadConfig(chainSchema: ChainSchema, env: NodeJS.ProcessEnv = process.env): Config {
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
    const fileResult = makeFileConfigSchema(chainSchema).safeParse(raw);
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
  chainSchema: ChainSchema,
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
export function chainOnlyConfig(
  env: EnvConfig,
  chain: ConfiguredChain,
  configPath: string,
): Config {
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

export function chainByKey(config: Config, key: string): ConfiguredChain {
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
