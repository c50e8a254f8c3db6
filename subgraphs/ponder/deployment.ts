/**
 * What the Ponder app indexes: one custody deployment on one chain, read from the JSON file named
 * by CUSTODY_PONDER_DEPLOYMENT (written by `deploymentOf` in the service's parity test, or by hand
 * from `custody-node contracts` output; README "dApp queries"). Checked once, with a message naming
 * each bad field, because a wrong address here means silently indexing nothing.
 */
import { readFileSync } from "node:fs";

export type Hex40 = `0x${string}`;

export type CustodyDeployment = {
  /** Ponder's chain name; the chain registry key (e.g. "local-a", "ethereum"). */
  chain: string;
  chainId: number;
  rpcUrls: string[];
  /** The ForwarderFactory's deploy block: sweeps and wallet transfers are indexed from here. */
  startBlock: number;
  forwarderFactory: Hex40;
  reservesAttestor: Hex40;
  /** The ReservesAttestor's deploy block. */
  attestorStartBlock: number;
  /** The factory's hotWallet (the subgraph reads it from the factory; same value). */
  hotWallets: Hex40[];
  coldWallets: Hex40[];
  /** Listed ERC-20 tokens whose transfers into/out of the wallets are indexed. */
  tokens: Hex40[];
  /** RPC polling interval (ms); Ponder's default is 1000. */
  pollingIntervalMs?: number;
};

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export function parseDeployment(raw: unknown): CustodyDeployment {
  const bad: string[] = [];
  const o = (raw ?? {}) as Record<string, unknown>;
  const address = (field: string, v: unknown): Hex40 => {
    if (typeof v !== "string" || !ADDRESS.test(v)) bad.push(`${field}: expected a 0x address`);
    return String(v).toLowerCase() as Hex40;
  };
  const addresses = (field: string): Hex40[] => {
    const v = o[field];
    if (!Array.isArray(v)) {
      bad.push(`${field}: expected an array of addresses`);
      return [];
    }
    return v.map((a, i) => address(`${field}[${i}]`, a));
  };
  const block = (field: string): number => {
    const v = o[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
      bad.push(`${field}: expected a block number`);
    return Number(v);
  };
  if (typeof o.chain !== "string" || o.chain.length === 0) bad.push("chain: expected a name");
  if (typeof o.chainId !== "number" || !Number.isSafeInteger(o.chainId) || o.chainId <= 0)
    bad.push("chainId: expected a positive integer");
  const rpcUrls = o.rpcUrls;
  if (
    !Array.isArray(rpcUrls) ||
    rpcUrls.length === 0 ||
    !rpcUrls.every((u) => typeof u === "string" && /^(https?|wss?):\/\//.test(u))
  )
    bad.push("rpcUrls: expected a non-empty array of http(s)/ws(s) URLs");
  const deployment: CustodyDeployment = {
    chain: String(o.chain),
    chainId: Number(o.chainId),
    rpcUrls: Array.isArray(rpcUrls) ? rpcUrls.map(String) : [],
    startBlock: block("startBlock"),
    forwarderFactory: address("forwarderFactory", o.forwarderFactory),
    reservesAttestor: address("reservesAttestor", o.reservesAttestor),
    attestorStartBlock: block("attestorStartBlock"),
    hotWallets: addresses("hotWallets"),
    coldWallets: addresses("coldWallets"),
    tokens: addresses("tokens"),
  };
  if (o.pollingIntervalMs !== undefined) {
    if (typeof o.pollingIntervalMs !== "number" || !(o.pollingIntervalMs > 0))
      bad.push("pollingIntervalMs: expected a positive number of ms");
    else deployment.pollingIntervalMs = o.pollingIntervalMs;
  }
  if (bad.length > 0) throw new Error(`bad custody deployment: ${bad.join("; ")}`);
  return deployment;
}

export function readDeployment(env: NodeJS.ProcessEnv = process.env): CustodyDeployment {
  const file = env.CUSTODY_PONDER_DEPLOYMENT;
  if (!file)
    throw new Error(
      "CUSTODY_PONDER_DEPLOYMENT is not set: name the JSON file describing the custody deployment to index",
    );
  return parseDeployment(JSON.parse(readFileSync(file, "utf8")));
}
