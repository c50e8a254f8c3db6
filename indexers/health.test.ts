import { describe, expect, it } from "vitest";
import type { IngestorStatus } from "./createIngestor.js";
import { indexerHealthCheck, unhealthyReasons } from "./health.js";

const chain = { blockTimeMs: 1000, maxLagBlocks: 10 };
const now = 1_000_000;
const healthy: IngestorStatus = {
  chainId: 1,
  head: 100n,
  indexed: 98n,
  headChangedAt: now - 500,
  syncedAt: now - 200,
  lastError: null,
  standby: false,
  leaseHeld: true,
  wsHeads: 0,
  halted: null,
  noHealthyEndpoint: null,
};

describe("unhealthyReasons", () => {
  it("is healthy when the head moves, lag is small and the loop runs", () => {
    expect(unhealthyReasons(chain, healthy, now)).toEqual([]);
  });
  it("fails when the head has not advanced for 3 block times", () => {
    const r = unhealthyReasons(chain, { ...healthy, headChangedAt: now - 3001 }, now);
    expect(r.map((x) => x.reason)).toEqual(["head_stalled"]);
  });
  it("fails when the indexer lags more than maxLagBlocks, or has indexed nothing", () => {
    expect(unhealthyReasons(chain, { ...healthy, indexed: 89n }, now).map((x) => x.reason)).toEqual(
      ["lagging"],
    );
    expect(unhealthyReasons(chain, { ...healthy, indexed: 90n }, now)).toEqual([]);
    expect(
      unhealthyReasons(chain, { ...healthy, indexed: null }, now).map((x) => x.reason),
    ).toEqual(["lagging"]);
  });
  it("fails when no pass succeeded for a while, with the last error", () => {
    const r = unhealthyReasons(
      chain,
      { ...healthy, syncedAt: now - 40_000, lastError: "boom" },
      now,
    );
    expect(r.map((x) => x.reason)).toEqual(["loop_stalled"]);
    expect(r[0]!.detail).toContain("boom");
  });
  it("fails at once while the chain is halted, saying how to resume", () => {
    const r = unhealthyReasons(
      chain,
      { ...healthy, halted: "reorg reaches finalized block 90" },
      now,
    );
    expect(r.map((x) => x.reason)).toEqual(["halted"]);
    expect(r[0]!.detail).toContain("custody-node chains resume");
  });
  it("fails while no endpoint has reached the blocks it needs", () => {
    const r = unhealthyReasons(
      chain,
      { ...healthy, noHealthyEndpoint: "no RPC endpoint has reached block 100" },
      now,
    );
    expect(r.map((x) => x.reason)).toEqual(["no_healthy_endpoint"]);
  });
  it("a standby (another process holds the chain) is ready", () => {
    expect(
      unhealthyReasons(
        chain,
        { ...healthy, head: null, indexed: null, headChangedAt: 0, standby: true },
        now,
      ),
    ).toEqual([]);
  });
});

describe("indexerHealthCheck", () => {
  // The check reads the clock: the status is as fresh as `healthy` is at `now`.
  const check = (status: IngestorStatus) =>
    indexerHealthCheck({
      chain: { ...chain, chainId: 1, key: "one" } as never,
      ingestor: {
        status: () => ({ ...status, headChangedAt: Date.now() - 500, syncedAt: Date.now() - 200 }),
        writes: () => true,
      },
    }).check();

  it("passes as degraded while only lagging (live and visible, not failed), with the lag", async () => {
    const r = await check({ ...healthy, indexed: 50n });
    expect(r).toMatchObject({ ok: true, degraded: true });
    expect(r.detail).toMatch(/behind/);
  });
  it("fails when lagging comes with another reason, and passes plainly when healthy", async () => {
    expect(
      await check({ ...healthy, indexed: 50n, halted: "reorg reaches finalized block 40" }),
    ).toMatchObject({
      ok: false,
    });
    expect(await check(healthy)).toEqual({ ok: true });
  });
});
