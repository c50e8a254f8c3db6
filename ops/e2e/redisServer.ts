/**
 * A dedicated, throw-away redis-server on a free port for outage tests: they stop and restart it
 * at will. Never point an outage test at the shared Redis on 6379.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Socket } from "node:net";
import { freePort } from "../testing/process.js";

export type RedisServer = {
  port: number;
  url: string;
  /** Kill the server (SIGKILL: an outage, not a shutdown); resolves once the port is closed. */
  stop: () => Promise<void>;
  /** Start it again on the same port (empty: `--save ""`, so an outage also loses the data). */
  start: () => Promise<void>;
};

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(500);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.connect(port, "127.0.0.1");
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`redis-server: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

class BindFailed extends Error {}

/**
 * Spawn redis-server on `port` and resolve with the port it reports once it is ready to accept
 * connections. A bind failure (the port was taken after we picked it) rejects with BindFailed;
 * any other early exit rejects with its log.
 */
function spawnRedis(port: number): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    live.add(proc);
    let log = "";
    let reported: number | undefined;
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      proc.kill("SIGKILL");
      reject(new Error(`redis-server: not ready within 30000 ms on port ${port}\n${log}`));
    }, 30_000);
    const onData = (chunk: Buffer) => {
      if (settled) return; // keep draining the pipe so the server never blocks on its log
      log += chunk.toString();
      const m = /Running mode=\w+, port=(\d+)/.exec(log);
      if (m) reported = Number(m[1]);
      if (/Ready to accept connections/.test(log)) {
        settled = true;
        clearTimeout(timer);
        if (reported !== undefined && reported !== port) {
          proc.kill("SIGKILL");
          reject(new Error(`redis-server reports port ${reported}, asked for ${port}`));
        } else resolve({ proc, port: reported ?? port });
      }
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", (code) => {
      live.delete(proc);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(
        /Address already in use/.test(log)
          ? new BindFailed(`redis-server: port ${port} taken`)
          : new Error(`redis-server exited (${code}) before ready\n${log}`),
      );
    });
    proc.once("error", (e) => {
      live.delete(proc);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * redis-server cannot listen on port 0, so the first start picks a free port and, when another
 * process takes it before redis-server binds (the probe-then-bind race), retries on a fresh one.
 * The port used is the one redis-server reports once ready. Restarts reuse it (clients reconnect
 * to the same URL); a restart that cannot bind fails loudly rather than talk to a stranger.
 */
export async function startRedisServer(): Promise<RedisServer> {
  let first: { proc: ChildProcess; port: number } | undefined;
  for (let attempt = 1; !first; attempt++) {
    try {
      first = await spawnRedis(await freePort());
    } catch (e) {
      if (!(e instanceof BindFailed) || attempt >= 10) throw e;
    }
  }
  const port = first.port;
  let child: ChildProcess | undefined;
  const adopt = (proc: ChildProcess) => {
    child = proc;
    proc.once("exit", () => {
      if (child === proc) child = undefined;
    });
    if (proc.exitCode !== null || proc.signalCode !== null) child = undefined;
  };
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      if (child) return;
      adopt((await spawnRedis(port)).proc);
      await waitFor("did not start", () => answers(port));
    },
    async stop() {
      const proc = child;
      if (!proc) return;
      const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGKILL");
      await exited;
      await waitFor("port still open", async () => !(await answers(port)));
    },
  };
  adopt(first.proc);
  await waitFor("did not start", () => answers(port));
  return server;
}
