/**
 * A stop while a tick waits on the node. The service's stop (ops/start.ts) aborts the shared
 * shutdown signal first, the RPC client's, and then stops the roles: the tick's read fails with the
 * abort's reason ("stop") a moment before the signer's own stop. That was logged as an error,
 * "broadcaster failed; restarting its session" (err "stop"), on an ordinary shutdown (seen once in
 * three `npm run demo` runs): error alerts on the logs would fire on a deploy. It is the stop.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createShutdown } from "../foundation/shutdown.js";
import { capturedLogger, LOG_LEVELS } from "../ops/testing/logs.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({ proxy: startRpcProxy });
});

afterAll(async () => {
  await t?.stop();
});

describe("a stop while a tick waits on the node", () => {
  it("is logged as the stop, not as a broadcaster failure", async () => {
    const { logger, lines } = capturedLogger();
    const shutdown = createShutdown();
    const common = { ...t.ctx.common, logger, shutdown };
    const signer = t.run(t.account, { common });
    try {
      await waitFor("the lease taken", async () =>
        lines.some((l) => l.msg === "broadcaster lease taken"),
      );
      // Every answer of the node 2 s late: the signer's next read waits on it.
      t.proxy!.setDelay(2_000);
      const asked = t.proxy!.calls("eth_blockNumber") + t.proxy!.calls("eth_getBlockByNumber");
      await waitFor(
        "a read of the next tick sent",
        async () =>
          t.proxy!.calls("eth_blockNumber") + t.proxy!.calls("eth_getBlockByNumber") > asked,
      );
      await shutdown.kill("stop");
      await waitFor("the tick's read aborted", async () =>
        lines.some(
          (l) =>
            l.msg === "broadcaster tick interrupted by stop" ||
            l.msg === "broadcaster failed; restarting its session",
        ),
      );
    } finally {
      await signer.stop();
      t.proxy!.setDelay(0);
    }
    // Before the fix: [{ msg: "broadcaster failed; restarting its session", err: "stop" }].
    expect(lines.filter((l) => l.level >= LOG_LEVELS.error).map((l) => l.msg)).toEqual([]);
    expect(lines.map((l) => l.msg)).toContain("broadcaster tick interrupted by stop");
  });
});
