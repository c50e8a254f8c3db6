/**
 * The end-to-end tests' custody set-up: `prepareCustody` (ops/devstack/custody.ts, what the demo and
 * `custody-node dev` run) on a test context.
 */
import type { Common } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { type PreparedCustody, prepareCustody } from "../devstack/custody.js";
import { demoPolicies } from "../devstack/scenario.js";

export type { PreparedCustody } from "../devstack/custody.js";

/**
 * For tests: `prepareCustody` on the test context's first chain, with its database and the KMS
 * emulator at `kms.url`; `policies: "demo"` (the default) gives the demo's withdrawal policies,
 * `"config"` keeps the context's own.
 */
export function prepareTestCustody(
  ctx: { common: Common; db: { pool: Pool }; config: Config },
  kms: { url: string },
  { policies = "demo" }: { policies?: "demo" | "config" } = {},
): Promise<PreparedCustody> {
  const chain = ctx.config.chains[0]!;
  return prepareCustody({
    common: ctx.common,
    pool: ctx.db.pool,
    chain,
    kmsEndpoint: kms.url,
    ...(policies === "demo" ? { policies: demoPolicies(chain.chainId) } : {}),
  });
}
