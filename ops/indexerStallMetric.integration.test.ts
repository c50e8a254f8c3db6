/**
 * The IndexerStalled and IndexerLagging alerts (ops/observability/alerts.yml) read
 * `custody_indexer_unhealthy{reason}` from /metrics. In production nothing asks an indexer task's
 * /readyz (only the api service is behind the ALB; ECS health checks ask /healthz), so the gauge
 * must be current at every scrape, not only after a /readyz request. Here a service running the
 * indexer role on an anvil that mines nothing (head stalled after 3 block times) is scraped and
 * never asked /readyz: /metrics must say head_stalled.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { migrate } from "./migrate.js";
import { type Service, startService } from "./start.js";
import { createTestContext, type TestContext } from "./testing/context.js";
import { waitFor } from "./testing/wait.js";

let ctx: TestContext;
let service: Service;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337, config: { blockTimeMs: 300 } }] });
  await migrate(ctx.config.env.DATABASE_URL);
  service = await startService(ctx.config, { roles: ["indexer"] });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await ctx?.cleanup();
});

const unhealthy = async (reason: string) => {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("custody_indexer_unhealthy{") &&
        l.includes('chain_id="31337"') &&
        l.includes(`reason="${reason}"`),
    );
  return line?.split(" ").at(-1) ?? "absent";
};

it("/metrics reports a stalled head without anyone asking /readyz", async () => {
  // No block is mined: after 3 block times (900 ms) the head has stalled.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const seen = await waitFor(
    "custody_indexer_unhealthy{reason=head_stalled} 1 on /metrics",
    async () => {
      const v = await unhealthy("head_stalled");
      return v === "1" ? v : undefined;
    },
    { timeoutMs: 5000 },
  ).catch(async () => unhealthy("head_stalled"));
  expect(seen).toBe("1");
  // The readiness check agrees (asked only now, after the scrapes above).
  const ready = (await (await fetch(`${service.url}/readyz`)).json()) as {
    checks: Record<string, { ok: boolean; detail?: string }>;
  };
  expect(ready.checks[`indexer:${ctx.config.chains[0]!.key}`]).toMatchObject({ ok: false });
  expect(ready.checks[`indexer:${ctx.config.chains[0]!.key}`]?.detail).toMatch(/has not advanced/);
});
