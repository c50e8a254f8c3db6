import { describe, expect, it } from "vitest";
import { type Config, policiesSchema } from "../../foundation/config.js";
import { assetsWithoutPolicy, customerAllowlist, evaluateWithdrawalPolicy } from "./policy.js";

const A = "0x00000000000000000000000000000000000000aa";
const B = "0x00000000000000000000000000000000000000bb";
const C = "0x00000000000000000000000000000000000000cc";
const native = "31337:0x0000000000000000000000000000000000000000";

const policies = policiesSchema.parse({
  withdrawals: {
    globalAllowlist: [A],
    customerAllowlists: { alice: [B] },
    limits: {
      [native]: { perTransaction: "1000", rolling24h: "1500", approvalThreshold: "100" },
    },
    requiredApprovals: 2,
  },
});
const base = { customerId: "alice", assetId: native, to: B, amount: 50n, rolling24h: 0n };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

describe("evaluateWithdrawalPolicy", () => {
  it("allows the customer's and the global allowlist, refuses others", () => {
    expect(evaluateWithdrawalPolicy(policies, base)).toEqual({ requiredApprovals: 0 });
    expect(evaluateWithdrawalPolicy(policies, { ...base, to: A })).toEqual({
      requiredApprovals: 0,
    });
    expect(code(() => evaluateWithdrawalPolicy(policies, { ...base, to: C }))).toBe(
      "DESTINATION_NOT_ALLOWED",
    );
    // bob has no own list: only the global one applies
    expect(code(() => evaluateWithdrawalPolicy(policies, { ...base, customerId: "bob" }))).toBe(
      "DESTINATION_NOT_ALLOWED",
    );
  });

  it("with no allowlists at all, any destination passes", () => {
    const open = policiesSchema.parse({
      withdrawals: {
        limits: {
          [native]: { perTransaction: "1000", rolling24h: "1000", approvalThreshold: "1000" },
        },
      },
    });
    expect(evaluateWithdrawalPolicy(open, { ...base, to: C, amount: 10n })).toEqual({
      requiredApprovals: 0,
    });
  });

  it("fails closed: an asset with no explicit limits is refused, whatever the amount", () => {
    const none = policiesSchema.parse({ withdrawals: {} });
    expect(code(() => evaluateWithdrawalPolicy(none, { ...base, to: C, amount: 1n }))).toBe(
      "WITHDRAWAL_POLICY_MISSING",
    );
    const token = "31337:0x00000000000000000000000000000000000000dd";
    expect(code(() => evaluateWithdrawalPolicy(policies, { ...base, assetId: token }))).toBe(
      "WITHDRAWAL_POLICY_MISSING",
    );
    try {
      evaluateWithdrawalPolicy(none, base);
    } catch (e) {
      expect((e as { meta: Record<string, unknown> }).meta).toMatchObject({
        field: "body.asset",
        asset_id: native,
      });
    }
  });

  it("names every listed asset without a policy (the start-up warning)", () => {
    const chains = [
      { chainId: 31337, tokens: [{ address: "0x00000000000000000000000000000000000000Dd" }] },
      { chainId: 31338, tokens: [] },
    ] as unknown as Config["chains"];
    expect(assetsWithoutPolicy({ chains, policies })).toEqual([
      "31337:0x00000000000000000000000000000000000000dd",
      "31338:0x0000000000000000000000000000000000000000",
    ]);
  });

  it("reads allowlists as own properties: a customer id like an Object member has no list", () => {
    for (const customerId of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(customerAllowlist(policies, customerId)).toEqual([]);
      // only the global list applies to them, and nothing throws
      expect(evaluateWithdrawalPolicy(policies, { ...base, customerId, to: A })).toEqual({
        requiredApprovals: 0,
      });
      expect(code(() => evaluateWithdrawalPolicy(policies, { ...base, customerId }))).toBe(
        "DESTINATION_NOT_ALLOWED",
      );
    }
    const own = {
      withdrawals: {
        ...policies.withdrawals,
        customerAllowlists: JSON.parse(`{"constructor":["${C}"]}`),
      },
    };
    expect(customerAllowlist(own, "constructor")).toEqual([C]);
  });

  it("enforces the per-transaction limit at its boundary", () => {
    expect(evaluateWithdrawalPolicy(policies, { ...base, amount: 1000n }).requiredApprovals).toBe(
      2,
    );
    expect(code(() => evaluateWithdrawalPolicy(policies, { ...base, amount: 1001n }))).toBe(
      "AMOUNT_ABOVE_LIMIT",
    );
  });

  it("enforces the rolling 24h limit including this withdrawal", () => {
    expect(
      evaluateWithdrawalPolicy(policies, { ...base, amount: 500n, rolling24h: 1000n }),
    ).toEqual({ requiredApprovals: 2 });
    expect(
      code(() => evaluateWithdrawalPolicy(policies, { ...base, amount: 501n, rolling24h: 1000n })),
    ).toBe("ROLLING_LIMIT_EXCEEDED");
  });

  it("requires approvals strictly above the threshold", () => {
    expect(evaluateWithdrawalPolicy(policies, { ...base, amount: 100n })).toEqual({
      requiredApprovals: 0,
    });
    expect(evaluateWithdrawalPolicy(policies, { ...base, amount: 101n })).toEqual({
      requiredApprovals: 2,
    });
  });

  it("matches limit keys case-insensitively", () => {
    const token = "31337:0xaBCdEf0000000000000000000000000000000001";
    const p = policiesSchema.parse({
      withdrawals: {
        limits: { [token]: { perTransaction: "5", rolling24h: "5", approvalThreshold: "5" } },
      },
    });
    expect(
      code(() =>
        evaluateWithdrawalPolicy(p, { ...base, assetId: token.toLowerCase(), to: C, amount: 6n }),
      ),
    ).toBe("AMOUNT_ABOVE_LIMIT");
  });
});
