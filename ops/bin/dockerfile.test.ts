/**
 * What can be checked of the image without building it (no base images offline): the Dockerfile
 * runs the same entry command the CDK task definitions and the boot test use, on Node 24, as a
 * non-root user, under an init, with a liveness HEALTHCHECK on the service port; .dockerignore
 * keeps dependencies, state and VCS out of the build context.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";
import { IMAGE_ENTRY, SERVICE_PORT } from "../infra/plan.js";

type Instruction = { op: string; args: string };

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split("\n")
    .filter((l) => !l.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [op = "", ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
}

const dockerfile = instructions(readFileSync(path.join(repoRoot, "Dockerfile"), "utf8"));
/** The instructions of the last stage: what the image is. */
const lastFrom = dockerfile.map((i) => i.op).lastIndexOf("FROM");
const runtime = dockerfile.slice(lastFrom);
const one = (op: string) => {
  const found = runtime.filter((i) => i.op === op);
  expect(found, op).toHaveLength(1);
  return found[0]!.args;
};

describe("Dockerfile", () => {
  it("is multi-stage on a Node 24 slim base", () => {
    const arg = dockerfile.find((i) => i.op === "ARG" && i.args.startsWith("NODE_IMAGE="));
    expect(arg?.args).toMatch(/^NODE_IMAGE=node:24(\.[\d.]+)?-[a-z]+-slim$/);
    const froms = dockerfile.filter((i) => i.op === "FROM").map((i) => i.args);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^\$\{NODE_IMAGE\}/);
  });

  it("runs the entry command of the CDK task definitions, under tini, with `start` by default", () => {
    expect(JSON.parse(one("ENTRYPOINT"))).toEqual(["tini", "--", ...IMAGE_ENTRY]);
    expect(JSON.parse(one("CMD"))).toEqual(["start"]);
    // The entry script and the compiled code are in the image.
    const copies = runtime.filter((i) => i.op === "COPY").map((i) => i.args);
    expect(copies).toContain(`${IMAGE_ENTRY[1]} ./${IMAGE_ENTRY[1]}`);
    expect(copies.some((c) => /--from=build \S+\/dist \.\/dist$/.test(c))).toBe(true);
    expect(copies.some((c) => /--from=deps \/app\/node_modules \.\/node_modules$/.test(c))).toBe(
      true,
    );
  });

  it("installs production dependencies only and runs as a non-root user", () => {
    const installs = dockerfile.filter((i) => i.op === "RUN" && i.args.includes("npm ci"));
    expect(installs.some((i) => i.args.includes("--omit=dev"))).toBe(true);
    const user = one("USER");
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    // USER comes before the entry point runs anything.
    expect(runtime.findIndex((i) => i.op === "USER")).toBeLessThan(
      runtime.findIndex((i) => i.op === "ENTRYPOINT"),
    );
  });

  it("probes liveness (/healthz) on the service port the task definitions use", () => {
    expect(one("HEALTHCHECK")).toContain("/healthz");
    expect(one("EXPOSE")).toBe(String(SERVICE_PORT));
    const env = runtime
      .filter((i) => i.op === "ENV")
      .map((i) => i.args)
      .join(" ");
    expect(env).toContain(`PORT=${SERVICE_PORT}`);
    expect(env).toContain("HOST=0.0.0.0");
  });
});

describe("the HEALTHCHECK command, run as the image runs it", () => {
  const exec = (): string[] => JSON.parse(one("HEALTHCHECK").replace(/^.*?CMD\s+/, ""));
  const probe = (port: number) =>
    new Promise<number | null>((resolve) => {
      // The image's `node` is the runtime's; here that is process.execPath (Node 24).
      const [, ...args] = exec();
      execFile(
        process.execPath,
        args,
        { env: { ...process.env, PORT: String(port) }, timeout: 30_000 },
        (error) => resolve(error ? ((error as { code?: number }).code ?? 1) : 0),
      );
    });

  it("exits 0 while /healthz answers 200, 1 when it answers 503 or nothing listens", async () => {
    expect(exec()[0]).toBe("node");
    let status = 200;
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? "");
      res.writeHead(status).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      expect(await probe(port)).toBe(0);
      status = 503;
      expect(await probe(port)).toBe(1);
      expect(paths).toEqual(["/healthz", "/healthz"]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(await probe(port)).toBe(1);
  });
});

describe(".dockerignore", () => {
  const ignored = readFileSync(path.join(repoRoot, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  it("keeps dependencies, builds, local state, VCS and env files out of the context", () => {
    for (const entry of ["**/node_modules", "dist", ".dev", ".git", ".env"])
      expect(ignored, entry).toContain(entry);
  });
});
