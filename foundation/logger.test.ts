/** LOG_FORMAT: JSON lines by default, one readable line per entry with `pretty`; secrets redacted in both. */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { envSchema } from "./config.js";
import { createLogger, prettyLine } from "./logger.js";

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join("") };
}

describe("LOG_FORMAT", () => {
  it("is json unless set, and refuses other values naming the variable", () => {
    expect(envSchema.parse({}).LOG_FORMAT).toBe("json");
    expect(envSchema.parse({ LOG_FORMAT: "pretty" }).LOG_FORMAT).toBe("pretty");
    const bad = envSchema.safeParse({ LOG_FORMAT: "colour" });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join("."))).toEqual(["LOG_FORMAT"]);
  });

  it("json: one JSON object per line with the secret redacted", () => {
    const out = capture();
    const log = createLogger("info", out.stream);
    log.child({ component: "api" }).info({ msg: "key created", key: { secret: "s3cr3t" } });
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 30,
      component: "api",
      msg: "key created",
      key: { secret: "[redacted]" },
      service: "custody-node",
    });
  });

  it("pretty: time, level, [component], message, key=value; errors with their stack; no secret", () => {
    const out = capture();
    const log = createLogger("debug", out.stream, "pretty");
    const child = log.child({ component: "indexer", chain_id: 31337 });
    child.info({ msg: "backfill", block: 120, note: "two words", key: { secret: "s3cr3t" } });
    child.debug("probe");
    child.error({ msg: "rpc failed", err: new Error("boom") });
    const text = out.text();
    expect(text).not.toContain("s3cr3t");
    expect(text).not.toMatch(/^\{/m);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}\[indexer\] backfill chain_id=31337 block=120 note="two words" key=\{"secret":"\[redacted\]"\}$/,
    );
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} DEBUG \[indexer\] probe chain_id=31337$/);
    expect(lines[2]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR \[indexer\] rpc failed chain_id=31337$/);
    expect(lines[3]).toBe("    Error: boom");
    expect(lines[4]).toMatch(/^ {4}\s*at /);
  });

  it("pretty passes a line that is not JSON through unchanged", () => {
    expect(prettyLine("not json")).toBe("not json\n");
  });
});
