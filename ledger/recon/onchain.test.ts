import { describe, expect, it } from "vitest";
import { loadConfig } from "../../ops/config.js";
import { ConfigError } from "../../ops/errors.js";
import { createRateLimiter } from "./onchain.js";

const chain = (recon: unknown) => ({
  key: "a",
  chainId: 31337,
  name: "a",
  rpcUrls: ["http://127.0.0.1:8545"],
  confirmations: { kind: "blocks", blocks: 2 },
  reorgWindow: 8,
  blockTimeMs: 1000,
  feeModel: "eip1559",
  recon,
});

const load = (recon: unknown) =>
  loadConfig({ CUSTODY_CONFIG_JSON: JSON.stringify({ chains: [chain(recon)] }) });

describe("recon balance-read config", () => {
  it("defaults every field, and takes valid ones", () => {
    expect(load({}).chains[0]!.recon).toEqual({
      rotation: 200,
      batchSize: 500,
      requestsPerSecond: 20,
    });
    const mc = "0xcA11bde05977b3631167028862bE2a173976CA11";
    expect(
      load({ rotation: 0, batchSize: 1, requestsPerSecond: 0.5, multicall3: mc }).chains[0]!.recon,
    ).toEqual({
      rotation: 0,
      batchSize: 1,
      requestsPerSecond: 0.5,
      multicall3: mc,
    });
  });

  it("refuses bad values, naming every bad field", () => {
    let error: unknown;
    try {
      load({ rotation: 1.5, batchSize: 0, requestsPerSecond: -1, multicall3: "0x12", extra: 1 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const fields = (error as ConfigError).issues.map((i) => i.field).sort();
    expect(fields).toEqual(
      expect.arrayContaining([
        "env:CUSTODY_CONFIG_JSON.chains.0.recon", // the unknown key
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.batchSize",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.multicall3",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.requestsPerSecond",
        "env:CUSTODY_CONFIG_JSON.chains.0.recon.rotation",
      ]),
    );
    expect((error as Error).message).toMatch(/chains\.0\.recon\.batchSize/);
  });
});

describe("createRateLimiter", () => {
  it("starts at most `rps` requests a second: the 5th of 5 at 10/s waits >= 400 ms", async () => {
    const wait = createRateLimiter(10);
    const t0 = performance.now();
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      await wait();
      starts.push(performance.now() - t0);
    }
    expect(starts[0]!).toBeLessThan(400);
    expect(starts[4]!).toBeGreaterThanOrEqual(399);
  });
});
