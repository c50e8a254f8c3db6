/**
 * Multicall3 on an anvil chain (anvil has none at its canonical address): deployed from the
 * creation code viem ships for its deployless multicall. viem does not export that constant, so it
 * is read from viem's own build of it (the same package version the service uses).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Hex } from "viem";

export function multicall3CreationCode(): Hex {
  const viemRoot = path.dirname(createRequire(import.meta.url).resolve("viem/package.json"));
  const text = readFileSync(path.join(viemRoot, "_esm", "constants", "contracts.js"), "utf8");
  const m = /multicall3Bytecode\s*=\s*'(0x[0-9a-f]+)'/.exec(text);
  if (!m) throw new Error("viem's multicall3Bytecode not found in _esm/constants/contracts.js");
  return m[1] as Hex;
}

/** Deploys Multicall3 from anvil's first account; returns its address (lowercase). */
export async function deployMulticall3(rpcUrl: string): Promise<Hex> {
  const rpc = async <T>(method: string, params: unknown[]): Promise<T> => {
    const r = (await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    }).then((x) => x.json())) as { result?: T; error?: { message: string } };
    if (r.error) throw new Error(`${method}: ${r.error.message}`);
    return r.result as T;
  };
  const [from] = await rpc<Hex[]>("eth_accounts", []);
  const hash = await rpc<Hex>("eth_sendTransaction", [{ from, data: multicall3CreationCode() }]);
  // Automine answers with the hash; on a loaded machine the receipt can come a moment later.
  const deadline = performance.now() + 30_000;
  for (;;) {
    const receipt = await rpc<{ contractAddress: string; status: string } | null>(
      "eth_getTransactionReceipt",
      [hash],
    );
    if (receipt) {
      if (receipt.status !== "0x1") throw new Error("Multicall3 deployment reverted");
      return receipt.contractAddress.toLowerCase() as Hex;
    }
    if (performance.now() > deadline)
      throw new Error(`Multicall3 deployment: no receipt for ${hash} within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
