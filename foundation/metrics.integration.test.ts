/**
 * /metrics of a started service (every role, one anvil chain): build info, the DB pool and the
 * depth of each BullMQ queue are exported, and every metric follows the one naming scheme
 * (custody_ prefix beside prom-client's process_/nodejs_ defaults, counters end in _total).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../ops/migrate.js";
import { type Service, startService } from "../ops/start.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { waitFor } from "../ops/testing/wait.js";
import { readBuildInfo } from "./metrics.js";
import { ROLE_NAMES } from "./roles.js";

type Sample = { name: string; labels: Record<string, string>; value: number };

function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

describe("/metrics of a started service", () => {
  let ctx: TestContext;
  let service: Service;
  beforeAll(async () => {
    ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
    await migrate(ctx.config.env.DATABASE_URL);
    service = await startService(ctx.config, { roles: [...ROLE_NAMES] });
  }, 120_000);
  afterAll(async () => {
    await service?.stop();
    await ctx?.cleanup();
  });

  const scrape = async () => {
    const res = await fetch(`${service.url}/metrics`);
    expect(res.status).toBe(200);
    return parse(await res.text());
  };
  const value = (samples: Sample[], name: string, labels: Record<string, string>) =>
    samples.find(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    )?.value;

  it("exports build info, the DB pool and per-queue job counts", async () => {
    const build = readBuildInfo();
    expect(build.version).toMatch(/^\d+\.\d+\.\d+/);
    const { samples } = await scrape();
    expect(
      value(samples, "custody_build_info", {
        version: build.version,
        commit: build.commit,
        node: process.version,
      }),
    ).toBe(1);
    expect(value(samples, "custody_db_pool_clients", { state: "total" })).toBeGreaterThan(0);
    expect(value(samples, "custody_db_pool_clients", { state: "idle" })).toBeGreaterThanOrEqual(0);
    expect(value(samples, "custody_db_pool_clients", { state: "waiting" })).toBe(0);

    // A queue no worker of this service serves: its jobs stay where they were put.
    const q = ctx.queues.queue("metrics-probe");
    await q.add("a", {}, { jobId: "a" });
    await q.add("b", {}, { jobId: "b" });
    await q.add("c", {}, { jobId: "c", delay: 3_600_000 });
    const probe = await waitFor(
      "custody_queue_jobs for metrics-probe",
      async () => {
        const { samples: s } = await scrape();
        const waiting = value(s, "custody_queue_jobs", {
          queue: "metrics-probe",
          state: "waiting",
        });
        return waiting === 2 ? s : undefined;
      },
      { timeoutMs: 10_000, everyMs: 200 },
    );
    for (const [state, n] of [
      ["waiting", 2],
      ["active", 0],
      ["delayed", 1],
      ["failed", 0],
    ] as const)
      expect(value(probe, "custody_queue_jobs", { queue: "metrics-probe", state })).toBe(n);
  });

  it("names every metric custody_* (defaults aside), counters *_total, durations *_seconds", async () => {
    const { types } = await scrape();
    const ours = [...types].filter(([n]) => !/^(process|nodejs)_/.test(n));
    expect(ours.length).toBeGreaterThan(5);
    const wrong = ours.filter(
      ([name, type]) =>
        !name.startsWith("custody_") ||
        (type === "counter") !== name.endsWith("_total") ||
        (/duration|latency|_time_/.test(name) && !name.endsWith("_seconds")),
    );
    expect(wrong).toEqual([]);
  });
});
