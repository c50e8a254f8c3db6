import { describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { defaultConfigPath, loadConfig } from "./config.js";
import { ConfigError } from "./errors.js";
import { createHealth } from "./health.js";

describe("readiness checks", () => {
  it("a degraded check passes readiness and is named; a failing one fails it", async () => {
    const health = createHealth();
    health.add({ name: "postgres", check: async () => ({ ok: true }) });
    health.add({
      name: "indexer:local",
      check: async () => ({ ok: true, degraded: true, detail: "120 blocks behind" }),
    });
    expect(await health.run()).toEqual({
      ok: true,
      degraded: ["indexer:local"],
      checks: {
        postgres: { ok: true },
        "indexer:local": { ok: true, degraded: true, detail: "120 blocks behind" },
      },
    });
    health.add({
      name: "redis",
      check: async () => {
        throw new Error("connect ECONNREFUSED");
      },
    });
    const failing = await health.run();
    expect(failing.ok).toBe(false);
    expect(failing.checks.redis).toEqual({ ok: false, detail: "connect ECONNREFUSED" });
  });

  it("a check that does not answer fails after the timeout instead of holding /readyz", async () => {
    const health = createHealth(50);
    health.add({ name: "stuck", check: () => new Promise(() => {}) });
    expect(await health.run()).toMatchObject({
      ok: false,
      checks: { stuck: { ok: false, detail: "timed out after 50 ms" } },
    });
  });
});

describe("REDIS_PREFIX", () => {
  const prefix = (value: string) =>
    loadConfig(chainSchema, { CUSTODY_CONFIG: defaultConfigPath, REDIS_PREFIX: value }).env
      .REDIS_PREFIX;

  it("accepts a leading {hash tag} (one Redis Cluster slot for BullMQ) and plain prefixes", () => {
    for (const ok of ["custody", "{custody}", "{custody}:prod", "{t-1_a}", "custody:eu-1"])
      expect(prefix(ok)).toBe(ok);
  });

  it("refuses braces anywhere else, empty tags and other characters, naming the field", () => {
    for (const bad of ["{custody", "custody}", "a{b}", "{}", "{a}{b}", "", "cus tody", "a/b"]) {
      let error: unknown;
      try {
        prefix(bad);
      } catch (e) {
        error = e;
      }
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as Error).message, bad).toContain("REDIS_PREFIX");
    }
  });
});
