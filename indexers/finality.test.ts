import { describe, expect, it } from "vitest";
import { chainSchema, finalityProblem } from "../chains/index.js";
import { ConfigError } from "../foundation/errors.js";
import { minimalChain } from "../ops/testing/configFile.js";
import { finalityRule, finalizedHeight } from "./finality.js";

describe("finality rule", () => {
  it("defaults to max(confirmations, reorgWindow) blocks, or the finalized tag", () => {
    expect(finalityRule({ confirmations: { kind: "blocks", blocks: 3 }, reorgWindow: 16 })).toEqual(
      { kind: "blocks", blocks: 16 },
    );
    expect(
      finalityRule({ confirmations: { kind: "blocks", blocks: 64 }, reorgWindow: 16 }),
    ).toEqual({ kind: "blocks", blocks: 64 });
    expect(finalityRule({ confirmations: { kind: "finalized" }, reorgWindow: 16 })).toEqual({
      kind: "finalized",
    });
    expect(
      finalityRule({
        confirmations: { kind: "blocks", blocks: 3 },
        reorgWindow: 16,
        finality: { kind: "finalized" },
      }),
    ).toEqual({ kind: "finalized" });
  });

  it("refuses a finality rule shallower than confirmations, naming the field", () => {
    const parsed = chainSchema.safeParse({
      ...minimalChain,
      confirmations: { kind: "blocks", blocks: 12 },
      finality: { kind: "blocks", blocks: 6 },
      reorgWindow: 4,
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["finality", "finality (6 blocks) is shallower than confirmations (12 blocks)"],
    ]);
    expect(
      finalityProblem({
        confirmations: { kind: "finalized" },
        finality: { kind: "blocks", blocks: 99 },
      }),
    ).toMatch(/must be \{ kind: "finalized" \}/);
    expect(() =>
      finalityRule({
        confirmations: { kind: "blocks", blocks: 5 },
        reorgWindow: 1,
        finality: { kind: "blocks", blocks: 4 },
      }),
    ).toThrow(ConfigError);
    // Equal depth is allowed, and an absent rule parses to absent (resolved by finalityRule).
    const ok = chainSchema.parse({
      ...minimalChain,
      confirmations: { kind: "blocks", blocks: 6 },
      finality: { kind: "blocks", blocks: 6 },
      reorgWindow: 4,
    });
    expect(ok.finality).toEqual({ kind: "blocks", blocks: 6 });
    expect(
      chainSchema.parse({
        ...minimalChain,
        confirmations: { kind: "blocks", blocks: 6 },
        reorgWindow: 4,
      }).finality,
    ).toBeUndefined();
  });
});

describe("finalizedHeight", () => {
  it("counts N blocks below the stored tip (no head a node reported: it may be bogus)", () => {
    const rule = { kind: "blocks", blocks: 8 } as const;
    expect(finalizedHeight(rule, { tip: 100n, nodeFinalized: null })).toBe(93n);
    expect(finalizedHeight(rule, { tip: 50n, nodeFinalized: null })).toBe(43n);
    expect(finalizedHeight(rule, { tip: 8n, nodeFinalized: null })).toBe(1n);
    expect(finalizedHeight(rule, { tip: 5n, nodeFinalized: null })).toBeNull();
  });

  it("follows the node's finalized tag for the finalized rule, never above the stored tip", () => {
    const rule = { kind: "finalized" } as const;
    expect(finalizedHeight(rule, { tip: 100n, nodeFinalized: 36n })).toBe(36n);
    expect(finalizedHeight(rule, { tip: 20n, nodeFinalized: 36n })).toBe(20n);
    expect(finalizedHeight(rule, { tip: 100n, nodeFinalized: null })).toBeNull();
  });
});
