/**
 * Spawning the real `custody-node` CLI from tests (also as an operator runs it on a test's
 * database and chain), and finding free loopback ports.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ChainConfig } from "../../chains/index.js";
import { repoRoot } from "../../foundation/config.js";

export const cliPath = path.join(repoRoot, "ops", "bin", "custody-node.js");

/**
 * Node's arguments to run a TypeScript file of the repository (`file` relative to its root or
 * absolute): ops/bin/ts-source.js, Node 24's own type stripping (tsx on an older Node), as the CLI
 * runs its source.
 */
export function tsNodeArgs(file: string, args: readonly string[] = []): string[] {
  return [
    "--import",
    path.join(repoRoot, "ops", "bin", "ts-source.js"),
    path.resolve(repoRoot, file),
    ...args,
  ];
}

/**
 * A port that was free a moment ago. Racy by nature (another process may bind it before the
 * caller does): tests should instead start servers on port 0 and read the bound port back
 * (`PORT=0` and the "custody-node started" log's url, `kms-local --port 0`, anvil `port: 0`). Kept
 * for tools that cannot bind port 0 themselves.
 */
/**
 * A loopback port free now, for a process a test starts later. Taken below the kernel's ephemeral
 * range (32768-60999 here): a port from listen(0) is one the kernel also hands to outgoing
 * connections, and another test's connection could take it before our process binds it
 * (`ops/dev.integration.test.ts` failed once so: EADDRINUSE). Random in 20000-32767, checked free.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    if (await canListen(port)) return port;
  }
  throw new Error("freePort: no free port in 20000-32767 after 50 tries");
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export type CliProcess = {
  child: ChildProcess;
  /** stdout and stderr as they came, interleaved. */
  output: () => string;
  /** Each stream alone (a command's machine-readable stdout, its notes on stderr). */
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

export function spawnCli(args: string[], env: Record<string, string>): CliProcess {
  return spawnNode([cliPath, ...args], env);
}

export type ChainCli = {
  /** A run's environment: the test's database, the written config file, silent logs. */
  env: Record<string, string>;
  /** Runs `custody-node <args>` to its exit: its exit code and its output as it came. */
  run: (args: string[]) => Promise<{ code: number | null; out: string }>;
  /** Deletes the config file's folder. */
  remove: () => void;
};

/**
 * Writes a config file (a child process's `CUSTODY_CONFIG`) naming `chain` with its rules as loaded
 * (`entry` adds fields or overrides them, e.g. `traces`, `tokens`, `confirmations`), and `kmsKeyId`
 * as its hot wallet when given; returns `file`.
 */
export function writeChainConfig(
  file: string,
  chain: ChainConfig,
  entry: Record<string, unknown> = {},
  kmsKeyId?: string,
): string {
  const { key, chainId, name, rpcUrls, confirmations, reorgWindow, blockTimeMs, feeModel } = chain;
  writeFileSync(
    file,
    JSON.stringify({
      chains: [
        {
          key,
          chainId,
          name,
          rpcUrls,
          confirmations,
          reorgWindow,
          blockTimeMs,
          feeModel,
          ...entry,
        },
      ],
      ...(kmsKeyId ? { hotWallets: [{ chain: key, kmsKeyId }] } : {}),
    }),
  );
  return file;
}

/**
 * The CLI as an operator runs it on a test's database and chain: a config file in a fresh temp
 * folder naming `chain` with its rules as loaded (`entry` adds fields, e.g. `traces`, `tokens`).
 */
export function chainCli({
  databaseUrl,
  chain,
  entry = {},
}: {
  databaseUrl: string;
  chain: ChainConfig;
  entry?: Record<string, unknown>;
}): ChainCli {
  const dir = mkdtempSync(path.join(tmpdir(), "custody-cli-"));
  const configPath = writeChainConfig(path.join(dir, "config.json"), chain, entry);
  const env = { DATABASE_URL: databaseUrl, CUSTODY_CONFIG: configPath, LOG_LEVEL: "silent" };
  return {
    env,
    async run(args) {
      const p = spawnCli(args, env);
      const { code } = await p.exited;
      return { code, out: p.output() };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A TypeScript script of the repository (test support, e.g. a CLI body with crash points), run as `tsNodeArgs`. */
export function spawnScript(
  script: string,
  args: string[],
  env: Record<string, string>,
): CliProcess {
  return spawnNode(tsNodeArgs(script, args), env);
}

function spawnNode(args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
    stderr += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => out, stdout: () => stdout, stderr: () => stderr, exited };
}

export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      return await fetch(url);
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms: ${String(lastError)}`);
}
