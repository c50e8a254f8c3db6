import { describe, expect, it } from "vitest";
import { chainSchema } from "../../chains/index.js";
import { parseFileConfig } from "../../foundation/config.js";
import { ConfigError } from "../../foundation/errors.js";
import { minimalChain } from "../../ops/testing/configFile.js";

describe("chains[].attestation (the proof-of-reserves schedule)", () => {
  it("is optional; when given, intervalMs defaults to a minute", () => {
    expect(
      parseFileConfig(chainSchema, { chains: [minimalChain] }).chains[0]!.attestation,
    ).toBeUndefined();
    expect(
      parseFileConfig(chainSchema, {
        chains: [{ ...minimalChain, attestation: { everyBlocks: 100 } }],
      }).chains[0]!.attestation,
    ).toEqual({ everyBlocks: 100, intervalMs: 60_000 });
  });

  it("a bad value is refused, naming the field", () => {
    for (const [attestation, field] of [
      [{ everyBlocks: 0 }, "chains.0.attestation.everyBlocks"],
      [{ everyBlocks: 1.5 }, "chains.0.attestation.everyBlocks"],
      [{}, "chains.0.attestation.everyBlocks"],
      [{ everyBlocks: 10, intervalMs: 10 }, "chains.0.attestation.intervalMs"],
      [{ everyBlocks: 10, every: 3 }, "chains.0.attestation"],
    ] as const) {
      let error: unknown;
      try {
        parseFileConfig(chainSchema, { chains: [{ ...minimalChain, attestation }] });
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(attestation)).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message, JSON.stringify(attestation)).toContain(field);
    }
  });
});
