/**
 * Withdrawal policy from config `policies.withdrawals`: destination allowlists (the customer's own
 * list plus the global one; no lists at all means any non-custody address), a per-transaction limit
 * and a rolling 24h limit per customer and asset, and the threshold above which M-of-N distinct
 * approvers are needed. Fails closed: an asset with no explicit `limits` entry cannot be withdrawn
 * (WITHDRAWAL_POLICY_MISSING), and the api role warns at start-up naming each such asset. Pure: the
 * caller supplies the rolling 24h total it read under a lock.
 */
import type { Config, PoliciesConfig } from "../../foundation/config.js";
import { PolicyViolationError } from "../errors.js";

export type PolicyInput = {
  customerId: string;
  /** `<chainId>:<token lowercase>` */
  assetId: string;
  /** lowercase */
  to: string;
  amount: bigint;
  /**
   * Sum of this customer's live withdrawals of the asset changed in the last 24h or not yet
   * confirmed (excluding this one).
   */
  rolling24h: bigint;
};

export type PolicyDecision = { requiredApprovals: number };

type Limits = PoliciesConfig["withdrawals"]["limits"][string];

const NATIVE = "0x0000000000000000000000000000000000000000";

export function limitsFor(policies: PoliciesConfig, assetId: string): Limits | undefined {
  const want = assetId.toLowerCase();
  for (const [key, limits] of Object.entries(policies.withdrawals.limits))
    if (key.toLowerCase() === want) return limits;
  return undefined;
}

/** The customer's own allowlist; an own property only (a customer id `constructor` has none). */
export function customerAllowlist(policies: PoliciesConfig, customerId: string): readonly string[] {
  const lists = policies.withdrawals.customerAllowlists;
  return Object.hasOwn(lists, customerId) ? (lists[customerId] ?? []) : [];
}

/** Every listed asset (native and tokens of each chain) with no explicit withdrawal limits. */
export function assetsWithoutPolicy(config: Pick<Config, "chains" | "policies">): string[] {
  const missing: string[] = [];
  for (const chain of config.chains) {
    const assets = [NATIVE, ...chain.tokens.map((t) => t.address)];
    for (const token of assets) {
      const assetId = `${chain.chainId}:${token.toLowerCase()}`;
      if (!limitsFor(config.policies, assetId)) missing.push(assetId);
    }
  }
  return missing;
}

export function evaluateWithdrawalPolicy(
  policies: PoliciesConfig,
  input: PolicyInput,
): PolicyDecision {
  const w = policies.withdrawals;
  const limits = limitsFor(policies, input.assetId);
  if (!limits)
    throw new PolicyViolationError(
      "WITHDRAWAL_POLICY_MISSING",
      "body.asset",
      `asset ${input.assetId} has no withdrawal policy (policies.withdrawals.limits): withdrawals of it are refused until one is configured`,
      { asset_id: input.assetId },
    );
  const allowed = [...customerAllowlist(policies, input.customerId), ...w.globalAllowlist].map(
    (a) => a.toLowerCase(),
  );
  if (allowed.length > 0 && !allowed.includes(input.to.toLowerCase()))
    throw new PolicyViolationError(
      "DESTINATION_NOT_ALLOWED",
      "body.to",
      "destination is not on the customer's or the global allowlist",
    );
  if (input.amount > limits.perTransaction)
    throw new PolicyViolationError(
      "AMOUNT_ABOVE_LIMIT",
      "body.amount",
      `amount exceeds the per-transaction limit of ${limits.perTransaction}`,
      { limit: limits.perTransaction.toString() },
    );
  if (input.rolling24h + input.amount > limits.rolling24h)
    throw new PolicyViolationError(
      "ROLLING_LIMIT_EXCEEDED",
      "body.amount",
      `amount would take the customer's 24h total to ${input.rolling24h + input.amount}, above the limit of ${limits.rolling24h}`,
      {
        limit: limits.rolling24h.toString(),
        used: input.rolling24h.toString(),
      },
    );
  return { requiredApprovals: input.amount > limits.approvalThreshold ? w.requiredApprovals : 0 };
}
