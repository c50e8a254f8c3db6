/**
 * Withdrawal policy from config `policies.withdrawals`: destination allowlists (the customer's own
 * list plus the global one; no lists at all means any non-custody address), a per-transaction limit
 * and a rolling 24h limit per customer and asset, and the threshold above which M-of-N distinct
 * approvers are needed. Pure: the caller supplies the rolling 24h total it read under a lock.
 */
import type { PoliciesConfig } from "../../ops/config.js";
import { PolicyViolationError } from "../errors.js";

export type PolicyInput = {
  customerId: string;
  /** `<chainId>:<token lowercase>` */
  assetId: string;
  /** lowercase */
  to: string;
  amount: bigint;
  /** Sum of this customer's live withdrawals of the asset in the last 24h (excluding this one). */
  rolling24h: bigint;
};

export type PolicyDecision = { requiredApprovals: number };

type Limits = PoliciesConfig["withdrawals"]["limits"][string];

export function limitsFor(policies: PoliciesConfig, assetId: string): Limits | undefined {
  const want = assetId.toLowerCase();
  for (const [key, limits] of Object.entries(policies.withdrawals.limits))
    if (key.toLowerCase() === want) return limits;
  return undefined;
}

export function evaluateWithdrawalPolicy(
  policies: PoliciesConfig,
  input: PolicyInput,
): PolicyDecision {
  const w = policies.withdrawals;
  const own = w.customerAllowlists[input.customerId] ?? [];
  const allowed = [...own, ...w.globalAllowlist].map((a) => a.toLowerCase());
  if (allowed.length > 0 && !allowed.includes(input.to.toLowerCase()))
    throw new PolicyViolationError(
      "DESTINATION_NOT_ALLOWED",
      "body.to",
      "destination is not on the customer's or the global allowlist",
    );
  const limits = limitsFor(policies, input.assetId);
  if (!limits) return { requiredApprovals: 0 };
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
