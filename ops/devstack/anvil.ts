/**
 * Anvil from the npm package @foundry-rs/anvil (the real binary, no separate install). We spawn the
 * platform binary directly, not the package's node wrapper, so killing it leaves no orphan.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
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
  stop: () => Promise<void>;
};

/** Live anvil processes of this Node process, killed on exit so none outlives us. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

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
  const child = spawn(anvilBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));

  const port = await new Promise<number>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`anvil did not start within 15 s:\n${output}`));
    }, 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Listening on [^\s:]+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        // Keep draining output so anvil never blocks on a full pipe.
        child.stdout?.removeListener("data", onData);
        child.stdout?.resume();
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`anvil exited with code ${code}:\n${output}`));
    });
  });

  return {
    chainId: options.chainId,
    port,
    rpcUrl: `http://127.0.0.1:${port}`,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}
