/**
 * The build as the Docker image uses it: `node ops/bin/build.js` compiles to dist/, and a directory
 * laid out like the image (package.json, node_modules, ops/bin/custody-node.js, dist/ — no
 * TypeScript source at all) runs the CLI from the compiled code: --help, `migrate` (the SQL files
 * resolve from dist/) and `start` (config and contract artifacts resolve; /healthz answers; SIGTERM
 * exits 0).
 */
import { execFileSync, spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";
import { MODULE_MIGRATIONS } from "../migrate.js";
import { createTestDatabase, type TestDatabase } from "../testing/database.js";
import { createTestRedis, type TestRedis } from "../testing/redis.js";
import { waitFor, within } from "../testing/wait.js";

function hasTypeScript(dir: string): boolean {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).some(
    (e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts"),
  );
}

describe("the compiled build (the image's layout)", () => {
  let image: string;
  let db: TestDatabase;
  let redis: TestRedis;
  beforeAll(async () => {
    image = mkdtempSync(path.join(tmpdir(), "custody-image-"));
    execFileSync(
      process.execPath,
      [path.join(repoRoot, "ops/bin/build.js"), "--out-dir", path.join(image, "dist")],
      { stdio: "pipe", timeout: 600_000 },
    );
    mkdirSync(path.join(image, "ops/bin"), { recursive: true });
    cpSync(
      path.join(repoRoot, "ops/bin/custody-node.js"),
      path.join(image, "ops/bin/custody-node.js"),
    );
    cpSync(path.join(repoRoot, "package.json"), path.join(image, "package.json"));
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(image, "node_modules"));
    db = await createTestDatabase({ migrate: false });
    redis = await createTestRedis();
  }, 600_000);
  afterAll(async () => {
    if (image) rmSync(image, { recursive: true, force: true });
    await db?.drop();
    await redis?.cleanup();
  });

  const run = (args: string[], env: Record<string, string> = {}) =>
    execFileSync(process.execPath, ["ops/bin/custody-node.js", ...args], {
      cwd: image,
      env: { ...process.env, ...env },
      encoding: "utf8",
      timeout: 120_000,
    });

  it("holds compiled JavaScript and the run-time assets, and no TypeScript", () => {
    expect(hasTypeScript(path.join(image, "dist"))).toBe(false);
    expect(existsSync(path.join(image, "dist/ops/cli.js"))).toBe(true);
    expect(existsSync(path.join(image, "dist/ops/config.example.json"))).toBe(true);
    for (const { dir } of MODULE_MIGRATIONS) {
      const sql = readdirSync(path.join(repoRoot, dir)).filter((f) => f.endsWith(".sql"));
      expect(readdirSync(path.join(image, "dist", dir)).sort(), dir).toEqual(sql.sort());
    }
  });

  it("runs --help from dist/ (there is no source to fall back to)", () => {
    const help = run(["--help"]);
    expect(help).toContain("Usage: custody-node");
    expect(help).toContain("start");
  });

  it("migrate applies every module's SQL from dist/", async () => {
    const out = run(["migrate"], { DATABASE_URL: db.url });
    expect(out).toMatch(/applied \d+ migration\(s\)/);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      for (const { schema, dir } of MODULE_MIGRATIONS) {
        // What the build copied (the first test holds it equal to the source folders).
        const files = readdirSync(path.join(image, "dist", dir)).filter((f) => f.endsWith(".sql"));
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${schema}.schema_migrations`,
        );
        expect(Number(rows[0]?.n), schema).toBe(files.length);
      }
    } finally {
      await client.end();
    }
  });

  it("start serves /healthz and /readyz from dist/ and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, ["ops/bin/custody-node.js", "start"], {
      cwd: image,
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        REDIS_PREFIX: redis.prefix,
        PORT: "0",
        SHUTDOWN_TIMEOUT_S: "20",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      const url = await waitFor(
        "the compiled service to start",
        () => {
          if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}\n${out}`);
          const line = out.split("\n").find((l) => l.includes('"custody-node started"'));
          return line ? (JSON.parse(line) as { url: string }).url : undefined;
        },
        { timeoutMs: 120_000 },
      );
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const ready = (await (await fetch(`${url}/readyz`)).json()) as {
        checks: Record<string, { ok: boolean }>;
      };
      expect(ready.checks.postgres?.ok).toBe(true);
      expect(ready.checks.redis?.ok).toBe(true);
      child.kill("SIGTERM");
      expect(await within("the compiled service to exit", exited, 60_000), out.slice(-3000)).toBe(
        0,
      );
    } finally {
      child.kill("SIGKILL");
    }
  }, 240_000);
});
