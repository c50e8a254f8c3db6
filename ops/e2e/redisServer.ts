/**
 * A dedicated, throw-away redis-server on a free port for outage tests: they stop and restart it
 * at will. Never point an outage test at the shared Redis on 6379.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, Socket } from "node:net";

export type RedisServer = {
  port: number;
  url: string;
  /** Kill the server (SIGKILL: an outage, not a shutdown); resolves once the port is closed. */
  stop: () => Promise<void>;
  /** Start it again on the same port (empty: `--save ""`, so an outage also loses the data). */
  start: () => Promise<void>;
};

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

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

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      if (child) return;
      const proc = spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        { stdio: "ignore" },
      );
      child = proc;
      live.add(proc);
      proc.once("exit", () => {
        live.delete(proc);
        if (child === proc) child = undefined;
      });
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
  await server.start();
  return server;
}
