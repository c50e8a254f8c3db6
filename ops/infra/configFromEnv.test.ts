import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { chainSchema } from "../../chains/index.js";
import { defaultConfigPath, loadConfig } from "../../foundation/config.js";
import { ConfigError } from "../../foundation/errors.js";

// ECS tasks get the config file's JSON from an SSM parameter as CUSTODY_CONFIG_JSON (ops/infra).
describe("CUSTODY_CONFIG_JSON", () => {
  it("is used instead of the CUSTODY_CONFIG file when set", () => {
    const json = JSON.parse(readFileSync(defaultConfigPath, "utf8"));
    json.chains = json.chains.slice(0, 1);
    const config = loadConfig(chainSchema, {
      CUSTODY_CONFIG: "/nonexistent/config.json",
      CUSTODY_CONFIG_JSON: JSON.stringify(json),
    });
    expect(config.chains.map((c) => c.key)).toEqual(["local-a"]);
    expect(config.configPath).toBe("env:CUSTODY_CONFIG_JSON");
  });

  it("names the variable when its JSON is bad", () => {
    let error: unknown;
    try {
      loadConfig(chainSchema, { CUSTODY_CONFIG_JSON: "{not json" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => i.field)).toEqual(["env.CUSTODY_CONFIG_JSON"]);
  });
});
