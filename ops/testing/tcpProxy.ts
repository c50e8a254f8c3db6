/**
 * A TCP proxy in front of a server (Postgres, for the leases) that can go silent: `blackhole()`
 * stops forwarding in both directions without closing anything, as a host partition or a failover
 * without a reset looks to both ends (no FIN, no RST: each side's writes go unanswered);
 * `blackholeClientPort()` does it to one connection only (Postgres's `client_port` of a session).
 */
import net from "node:net";

export type TcpProxy = {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlFor: (url: string) => string;
  /** From now on, every byte either way is dropped; sockets stay open. */
  blackhole: () => void;
  /**
   * The one connection whose proxy-to-server socket has this local port (the session's
   * `pg_stat_activity.client_port`) goes silent the same way; the others carry on.
   */
  blackholeClientPort: (port: number) => void;
  close: () => Promise<void>;
};

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let silent = false;
  /** Local ports of the proxy-to-server sockets gone silent. */
  const silentPorts = new Set<number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    const quiet = () => silent || silentPorts.has(outbound.localPort ?? -1);
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on("data", (chunk) => {
        if (!quiet()) to.write(chunk);
      });
      from.on("end", () => {
        if (!quiet()) to.end();
      });
    };
    pipe(inbound, outbound);
    pipe(outbound, inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    urlFor(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    blackhole() {
      silent = true;
    },
    blackholeClientPort(port) {
      silentPorts.add(port);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
