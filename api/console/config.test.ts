import { describe, expect, it } from "vitest";
import { apiConfigSchema } from "../../foundation/config.js";

describe("api.console config", () => {
  it("defaults the idle timeout to 15 minutes and refuses bad fields by name", () => {
    expect(apiConfigSchema.parse({ console: {} }).console).toEqual({ idleTimeoutMs: 900_000 });
    expect(apiConfigSchema.parse({}).console).toBeUndefined();
    const bad = apiConfigSchema.safeParse({
      console: { idleTimeoutMs: 10, secureCookie: "yes", sso: {} },
    });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join("."));
    expect(paths).toEqual(
      expect.arrayContaining(["console.idleTimeoutMs", "console.secureCookie", "console"]),
    );
    expect(bad.error!.issues.find((i) => i.path.join(".") === "console")?.message).toMatch(/sso/);
  });
});
