/**
 * For tests of the config file's `api` section: the section as `loadConfig` reads it from a file
 * with one chain, or the `ConfigError` it refuses the file with.
 */
import { chainSchema } from "../../chains/index.js";
import { type Config, loadConfig } from "../../foundation/config.js";
import { ConfigError } from "../../foundation/errors.js";
import { minimalChain } from "../../ops/testing/configFile.js";

/** `api` in the file (absent when undefined), through `loadConfig` as the process reads it. */
const load = (api: unknown) =>
  loadConfig(chainSchema, {
    DATABASE_URL: "postgres://postgres@127.0.0.1:5432/unused",
    CUSTODY_CONFIG_JSON: JSON.stringify({
      chains: [minimalChain],
      ...(api !== undefined ? { api } : {}),
    }),
  });

export function loadApiConfig(api: unknown): Config["api"] {
  return load(api).api;
}

/** The error `loadConfig` refuses `api` with; throws when it accepts it. */
export function refusedApiConfig(api: unknown): ConfigError {
  try {
    load(api);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`api ${JSON.stringify(api)} was accepted`);
}
