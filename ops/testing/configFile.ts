/**
 * For config tests: write a config file to a fresh temp path (for `CUSTODY_CONFIG`), and collect the
 * field issues of the one `ConfigError` a call throws.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { ConfigError } from "../../foundation/errors.js";

/** The fewest fields a chain of the config file needs (a finalized-tag, legacy-fee chain "a"). */
export const minimalChain = {
  key: "a",
  chainId: 1,
  name: "a",
  rpcUrls: ["http://127.0.0.1:1"],
  confirmations: { kind: "finalized" },
  reorgWindow: 5,
  blockTimeMs: 1000,
  feeModel: "legacy",
};

/** Writes `content` (a string as is, anything else as JSON) and returns the file's path. */
export function writeConfigFile(content: unknown): string {
  const file = path.join(tmpdir(), `custody-config-${process.pid}-${Math.random()}.json`);
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

/** The issues of the `ConfigError` that `fn` throws; fails the test if it throws anything else or nothing. */
export function configIssuesOf(fn: () => unknown): { field: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError");
}
