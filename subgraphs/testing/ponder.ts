/**
 * The Ponder app as a real child process (`ponder start`), as an operator runs it: its own Postgres
 * schema, the deployment file in CUSTODY_PONDER_DEPLOYMENT. Ponder moves to the next port when the
 * asked one is taken, so the URL is read from its "Created HTTP server" line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "../../ops/testing/process.js";
import { waitFor } from "../../ops/testing/wait.js";
import type { CustodyDeployment } from "../ponder/deployment.js";
import { requireSubgraphsInstall, subgraphsBin, subgraphsRoot } from "./install.js";

export type PonderProcess = {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** POST a GraphQL query; throws on HTTP or GraphQL errors. */
  graphql: <T>(query: string, variables?: Record<string, unknown>) => Promise<T>;
  /** The block Ponder has indexed the chain to (its `_meta` status). */
  indexedBlock: () => Promise<number>;
  stop: () => Promise<void>;
};

export async function startPonder({
  deployment,
  databaseUrl,
  schema,
  timeoutMs = 120_000,
}: {
  deployment: CustodyDeployment;
  databaseUrl: string;
  schema: string;
  timeoutMs?: number;
}): Promise<PonderProcess> {
  requireSubgraphsInstall();
  const dir = await mkdtemp(path.join(os.tmpdir(), "custody-ponder-"));
  const file = path.join(dir, "deployment.json");
  await writeFile(file, JSON.stringify(deployment));
  const port = await freePort();
  const child = spawn(
    subgraphsBin("ponder"),
    [
      "--log-format",
      "json",
      "start",
      "--schema",
      schema,
      "--port",
      String(port),
      "--hostname",
      "127.0.0.1",
    ],
    {
      cwd: path.join(subgraphsRoot, "ponder"),
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        CUSTODY_PONDER_DEPLOYMENT: file,
        PONDER_TELEMETRY_DISABLED: "true",
        NO_COLOR: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let alive = true;
  void exited.then(() => {
    alive = false;
  });

  const stop = async () => {
    if (alive) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const boundPort = await waitFor(
      "the Ponder app's HTTP server",
      () => {
        if (!alive) throw new Error(`ponder exited before serving:\n${out.slice(-4000)}`);
        const m = out.match(/Created HTTP server[^\n]*?port\D+(\d+)/);
        return m ? Number(m[1]) : undefined;
      },
      { timeoutMs, everyMs: 100 },
    );
    const url = `http://127.0.0.1:${boundPort}`;
    await waitFor(
      "the Ponder app to be ready (backfill done)",
      async () => {
        if (!alive) throw new Error(`ponder exited:\n${out.slice(-4000)}`);
        const res = await fetch(`${url}/ready`).catch(() => undefined);
        return res?.status === 200;
      },
      { timeoutMs, everyMs: 250 },
    );
    const graphql = async <T>(query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data?: T; errors?: unknown[] };
      if (res.status !== 200 || body.errors || !body.data)
        throw new Error(`Ponder GraphQL answered ${res.status}: ${JSON.stringify(body)}`);
      return body.data;
    };
    const indexedBlock = async () => {
      const data = await graphql<{
        _meta: { status: Record<string, { block: { number: number } | null }> };
      }>("{ _meta { status } }");
      return data._meta.status[deployment.chain]?.block?.number ?? -1;
    };
    return { url, child, output: () => out, graphql, indexedBlock, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
