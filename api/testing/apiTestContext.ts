/**
 * For api integration tests: a test context (own database, Redis prefix, optional anvils), the app
 * built with the /v1 plugin, and one API key per scope (plus helpers to call with them). For
 * withdrawal tests, the same on one anvil chain with the hot wallet deployed, a native withdrawal
 * policy and customers funded in the ledger.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import type { Common } from "../../foundation/common.js";
import { createHealth } from "../../foundation/health.js";
import type { Redis } from "../../foundation/redis.js";
import { createLedger, type Ledger, transferId } from "../../ledger/index.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../ops/testing/context.js";
import { type ApiKey, createApiKey, SCOPES, type Scope } from "../apiKeys.js";
import { buildApp } from "../app.js";
import { createV1Plugin, type V1Options } from "../v1.js";
import { deployTestFactory } from "./factory.js";

export type ApiTestContext = {
  ctx: TestContext;
  app: FastifyInstance;
  /** Plaintext key per scope (owner `owner-<scope>`). */
  keys: Record<Scope, string>;
  keyRows: Record<Scope, ApiKey>;
  newKey: (owner: string, scopes: Scope[]) => Promise<string>;
  /**
   * Another api task on the same database and Redis prefix (ECS runs several behind the balancer),
   * built with this context's /v1 options and `v1`, on `redis` or `common` where given; `cleanup`
   * closes it.
   */
  addApp: (options?: {
    v1?: ApiTestOptions["v1"];
    redis?: Redis;
    common?: Common;
  }) => Promise<FastifyInstance>;
  call: (key: string | null, opts: InjectOptions) => Promise<LightMyRequestResponse>;
  cleanup: () => Promise<void>;
};

export type ApiTestOptions = {
  chains?: TestChainSpec[];
  file?: Parameters<typeof createTestContext>[0] extends infer O
    ? O extends { file?: infer F }
      ? F
      : never
    : never;
  v1?: Partial<Omit<V1Options, "common" | "pool" | "redis">>;
  /** Change the test config (webhooks and their secrets) before the app is built. */
  configure?: (ctx: TestContext) => TestContext;
};

export async function createApiTestContext(options: ApiTestOptions = {}): Promise<ApiTestContext> {
  const base = await createTestContext({
    ...(options.chains ? { chains: options.chains } : {}),
    ...(options.file ? { file: options.file } : {}),
  });
  const ctx = options.configure ? options.configure(base) : base;
  const build = (task: Parameters<ApiTestContext["addApp"]>[0] = {}) => {
    const common = task.common ?? ctx.common;
    return buildApp({
      common,
      health: createHealth(),
      plugins: [
        createV1Plugin({
          common,
          pool: ctx.db.pool,
          redis: task.redis ?? ctx.redis.redis,
          // Tests call from one address and many expect 401s; the limiter's own test sets its limit.
          authFailureLimit: { max: 1_000_000, windowMs: 60_000 },
          ...options.v1,
          ...task.v1,
        }),
      ],
    });
  };
  const app = await build();
  const others: FastifyInstance[] = [];
  const keys = {} as Record<Scope, string>;
  const keyRows = {} as Record<Scope, ApiKey>;
  for (const scope of SCOPES) {
    const { key, plaintext } = await createApiKey(ctx.db.pool, {
      owner: `owner-${scope}`,
      scopes: [scope],
    });
    keys[scope] = plaintext;
    keyRows[scope] = key;
  }
  return {
    ctx,
    app,
    keys,
    keyRows,
    async newKey(owner, scopes) {
      return (await createApiKey(ctx.db.pool, { owner, scopes })).plaintext;
    },
    async addApp(options) {
      const another = await build(options);
      others.push(another);
      return another;
    },
    call(key, opts) {
      return app.inject({
        ...opts,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...opts.headers },
      });
    },
    async cleanup() {
      for (const another of others) await another.close();
      await app.close();
      await base.cleanup();
    },
  };
}

/** The native asset of the withdrawal test chain. */
const TEST_NATIVE = "31337:0x0000000000000000000000000000000000000000";

/** anvil's dev account 1: the destination of the test withdrawals. */
const TEST_DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

export type WithdrawalApiTestContext = ApiTestContext & {
  ledger: Ledger;
  /** The deployed hot wallet (lower case). */
  hotWallet: string;
  /**
   * POST /v1/withdrawals with `key`: `amount` wei of the native asset from `customer` to anvil's
   * dev account 1, under a fresh idempotency key; fails the test unless it is created (201).
   */
  withdrawNative: (
    key: string,
    customer: string,
    amount: bigint,
  ) => Promise<{ id: string; status: string }>;
};

/**
 * An api test context on anvil chain 31337 (`local-a`) with the forwarder factory (hot wallet)
 * deployed, the config's assets in the ledger, and each customer of `fund` credited `amount` wei
 * of the native asset from `custody:deposits` (transfer id `test:fund:<customer>`). `policy` is the
 * native asset's withdrawal limits (wei); `file` adds to the config file (its own `policies` win).
 * `cleanup` closes the ledger too.
 */
export async function createWithdrawalApiTestContext(
  options: Omit<ApiTestOptions, "chains"> & {
    chain?: TestChainSpec;
    policy?: {
      perTransaction: bigint;
      rolling24h: bigint;
      approvalThreshold: bigint;
      requiredApprovals?: number;
      customerAllowlists?: Record<string, string[]>;
    };
    fund: { customers: string[]; amount: bigint };
  },
): Promise<WithdrawalApiTestContext> {
  const { chain, policy, fund, ...rest } = options;
  const t = await createApiTestContext({
    ...rest,
    chains: [chain ?? { chainId: 31337, key: "local-a" }],
    ...(policy
      ? {
          file: {
            policies: {
              withdrawals: {
                limits: {
                  [TEST_NATIVE]: {
                    perTransaction: policy.perTransaction.toString(),
                    rolling24h: policy.rolling24h.toString(),
                    approvalThreshold: policy.approvalThreshold.toString(),
                  },
                },
                ...(policy.customerAllowlists
                  ? { customerAllowlists: policy.customerAllowlists }
                  : {}),
                ...(policy.requiredApprovals !== undefined
                  ? { requiredApprovals: policy.requiredApprovals }
                  : {}),
              },
            },
            ...rest.file,
          },
        }
      : {}),
  });
  let ledger: Ledger | undefined;
  try {
    const hotWallet = (await deployTestFactory(t.ctx)).contract.hotWallet.toLowerCase();
    ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
    await ledger.ensureAssetsFromConfig(t.ctx.config.chains);
    for (const customer of fund.customers)
      await ledger.transfer({
        id: transferId(`test:fund:${customer}`),
        assetId: TEST_NATIVE,
        debit: "custody:deposits",
        credit: `user:${customer}`,
        amount: fund.amount,
        kind: "manual",
      });
    const opened = ledger;
    let withdrawals = 0;
    return {
      ...t,
      ledger: opened,
      hotWallet,
      async withdrawNative(key, customer, amount) {
        const res = await t.call(key, {
          method: "POST",
          url: "/v1/withdrawals",
          headers: { "idempotency-key": `test-withdrawal-${++withdrawals}` },
          payload: {
            customerId: customer,
            chain: t.ctx.config.chains[0]!.key,
            asset: "native",
            to: TEST_DEST,
            amount: amount.toString(),
          },
        });
        if (res.statusCode !== 201)
          throw new Error(`withdrawal not created: ${res.statusCode} ${res.body}`);
        return res.json();
      },
      async cleanup() {
        await opened.close();
        await t.cleanup();
      },
    };
  } catch (error) {
    await ledger?.close();
    await t.cleanup();
    throw error;
  }
}

/**
 * A withdrawal api test context whose native withdrawals above `approvalThreshold` wait for two
 * approvers, with the three keys such tests use: `requester` (withdrawals:write, owner
 * exchange-backend) and two approvers, `anna` and `ben` (withdrawals:approve, owners ops-anna and
 * ops-ben).
 */
export async function createTwoApproverTestContext(options: {
  policy: { perTransaction: bigint; rolling24h: bigint; approvalThreshold: bigint };
  fund: { customers: string[]; amount: bigint };
}): Promise<{ t: WithdrawalApiTestContext; requester: string; anna: string; ben: string }> {
  const t = await createWithdrawalApiTestContext({
    policy: { ...options.policy, requiredApprovals: 2 },
    fund: options.fund,
  });
  try {
    return {
      t,
      requester: await t.newKey("exchange-backend", ["withdrawals:write"]),
      anna: await t.newKey("ops-anna", ["withdrawals:approve"]),
      ben: await t.newKey("ops-ben", ["withdrawals:approve"]),
    };
  } catch (error) {
    await t.cleanup();
    throw error;
  }
}
