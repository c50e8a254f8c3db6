/**
 * Anvil from the npm package @foundry-rs/anvil (the real binary, no separate install). We spawn the
 * platform binary directly, not the package's node wrapper, so killing it leaves no orphan.
 *
 * Anvil logs a line per request and per mined block, and blocks on a full stdout. Its output goes
 * to a log file, not a pipe: a pipe needs this process's event loop to drain it, and a caller that
 * blocks (spawnSync of a child that calls anvil, a long synchronous stretch) stalled anvil after a
 * few hundred requests (a pipe can be one 4 KiB page when the user's pipe pages are over
 * fs.pipe-user-pages-soft). That was the "eth_call timeout" of the 10M-fact scale reconciliation.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(import.meta.url);

const PLATFORM: Record<string, string> = { linux: "linux", darwin: "darwin", win32: "win32" };
const ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };

export function anvilBinary(): string {
  const pkg = `@foundry-rs/anvil-${PLATFORM[process.platform]}-${ARCH[process.arch]}`;
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin", "anvil");
  } catch {
    throw new Error(`anvil binary not found: install dependencies with "npm ci" (package ${pkg})`);
  }
}

export type AnvilOptions = {
  chainId: number;
  /** 0 picks a free port (read back from anvil's output). */
  port?: number;
  /** Seconds between blocks; omitted: automine (one block per transaction). */
  blockTime?: number;
  /** Extra command-line flags. */
  args?: string[];
};

export type Anvil = {
  chainId: number;
  port: number;
  rpcUrl: string;
  process: ChildProcess;
  /** Anvil's output (requests, mined blocks); removed when anvil exits. */
  logPath: string;
  stop: () => Promise<void>;
};

/** Live anvil processes of this Node process and their log dirs, killed on exit so none outlives us. */
const live = new Map<ChildProcess, string>();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [child, dir] of live) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const readLog = (file: string) => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
};

export async function startAnvil(options: AnvilOptions): Promise<Anvil> {
  installExitHook();
  const args = [
    "--host",
    "127.0.0.1",
    "--port",
    String(options.port ?? 0),
    "--chain-id",
    String(options.chainId),
    "--accounts",
    "10",
    "--balance",
    "1000000",
    ...(options.blockTime !== undefined ? ["--block-time", String(options.blockTime)] : []),
    ...(options.args ?? []),
  ];
  const dir = mkdtempSync(path.join(tmpdir(), "custody-anvil-"));
  const logPath = path.join(dir, "anvil.log");
  const fd = openSync(logPath, "w");
  let child: ChildProcess;
  try {
    child = spawn(anvilBinary(), args, { stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  live.set(child, dir);
  const removeLog = () => {
    live.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };

  const port = await new Promise<number>((resolve, reject) => {
    const started = performance.now();
    let exited: number | null | undefined;
    const onExit = (code: number | null) => {
      exited = code;
    };
    child.once("exit", onExit);
    const fail = (message: string) => {
      removeLog();
      reject(new Error(message));
    };
    const poll = () => {
      const output = readLog(logPath);
      const match = /Listening on [^\s:]+:(\d+)/.exec(output);
      if (match) {
        child.removeListener("exit", onExit);
        return resolve(Number(match[1]));
      }
      if (exited !== undefined) return fail(`anvil exited with code ${exited}:\n${output}`);
      if (performance.now() - started > 15_000) {
        child.kill("SIGKILL");
        return fail(`anvil did not start within 15 s:\n${output}`);
      }
      setTimeout(poll, 20);
    };
    poll();
  });
  // Resolved from a poll, so no exit event can have been missed between it and here.
  if (child.exitCode !== null || child.signalCode !== null) removeLog();
  else child.once("exit", removeLog);

  return {
    chainId: options.chainId,
    port,
    rpcUrl: `http://127.0.0.1:${port}`,
    process: child,
    logPath,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}
