import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { capturedLogger } from "../ops/testing/logs.js";
import { startLoop } from "./loop.js";
import { createShutdown } from "./shutdown.js";

describe("startLoop", () => {
  it("logs a pass that failed as a failed pass (warn), and goes on", async () => {
    const { logger, lines } = capturedLogger();
    let passes = 0;
    const loop = startLoop({
      name: "flaky",
      intervalMs: 10,
      logger,
      fn: async () => {
        passes++;
        if (passes === 1) throw new Error("refused");
      },
    });
    while (passes < 2) await sleep(5);
    await loop.stop();
    expect(lines.map((l) => [l.level, l.msg, l.pass])).toEqual([
      [40, "periodic pass failed", "flaky"],
    ]);
  });

  // ops/start.ts aborts the shared shutdown signal (the RPC client's) before it stops the roles.
  it("logs a pass the process's stop interrupted as the stop (info), not as a failure", async () => {
    const { logger, lines } = capturedLogger();
    const shutdown = createShutdown();
    let reading = false;
    const loop = startLoop({
      name: "reads the node",
      intervalMs: 10,
      logger,
      stopping: shutdown.isShuttingDown,
      fn: async () => {
        reading = true;
        await sleep(60_000, undefined, { signal: shutdown.signal });
      },
    });
    while (!reading) await sleep(5);
    await shutdown.kill("stop");
    // The roles are stopped after the signal's abort, so the pass has failed before this loop's stop.
    while (lines.length === 0) await sleep(5);
    await loop.stop();
    // Before `stopping`: [40, "periodic pass failed"].
    expect(lines.map((l) => [l.level, l.msg, l.pass])).toEqual([
      [30, "periodic pass interrupted by stop", "reads the node"],
    ]);
  });
});
