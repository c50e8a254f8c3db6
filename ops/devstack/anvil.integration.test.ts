import { createPublicClient, http } from "viem";
import { afterAll, describe, expect, it } from "vitest";
import { type Anvil, startAnvil } from "./anvil.js";

describe("local anvil chains", () => {
  const anvils: Anvil[] = [];
  afterAll(async () => {
    await Promise.all(anvils.map((a) => a.stop()));
  });

  it("runs two chains with different chain ids and block times on free ports", async () => {
    const a = await startAnvil({ chainId: 31337, port: 0, blockTime: 1 });
    const b = await startAnvil({ chainId: 31338, port: 0, blockTime: 2 });
    anvils.push(a, b);
    expect(a.port).not.toBe(b.port);
    const ca = createPublicClient({ transport: http(a.rpcUrl) });
    const cb = createPublicClient({ transport: http(b.rpcUrl) });
    expect(await ca.getChainId()).toBe(31337);
    expect(await cb.getChainId()).toBe(31338);
    await new Promise((r) => setTimeout(r, 4500));
    const [ha, hb] = [await ca.getBlockNumber(), await cb.getBlockNumber()];
    // 1 s blocks vs 2 s blocks over ~4.5 s.
    expect(ha).toBeGreaterThanOrEqual(3n);
    expect(hb).toBeGreaterThanOrEqual(1n);
    expect(hb).toBeLessThan(ha);
  });

  it("stop() leaves no process behind", async () => {
    const c = await startAnvil({ chainId: 31339, port: 0 });
    const pid = c.process.pid!;
    await c.stop();
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
