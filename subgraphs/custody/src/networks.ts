// biome-ignore-all lint/suspicious/noDoubleEquals: AssemblyScript compares strings by content with ==; its === compares references
// Facts per Graph network name that the manifest cannot carry per network: the chain id and the
// listed tokens of the built-in chains (chains/registry.ts), and the parsing of the manifest's
// context lists. Pure AssemblyScript (no graph-ts), so networks.test.ts compiles it to WebAssembly
// and checks it against the registry and networks.json.

export function chainIdOf(network: string): i32 {
  if (network == "mainnet") return 1;
  if (network == "bsc") return 56;
  if (network == "matic") return 137;
  if (network == "arbitrum-one") return 42161;
  if (network == "base") return 8453;
  if (network == "optimism") return 10;
  if (network == "local-a") return 31337;
  if (network == "local-b") return 31338;
  return 0;
}

/** Listed tokens of a built-in chain (lowercase hex); a deployment adds its own in `tokens`. */
export function listedTokensOf(network: string): string[] {
  if (network == "mainnet")
    return [
      "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
      "0xdac17f958d2ee523a2206206994597c13d831ec7",
    ];
  if (network == "bsc") return ["0x55d398326f99059ff775485246999027b3197955"];
  if (network == "matic") return ["0x3c499c542cef5e3811e1192ce70d8cc03d5c3359"];
  if (network == "arbitrum-one") return ["0xaf88d065e77c8cc2239327c5edb3a432268e5831"];
  if (network == "base") return ["0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"];
  if (network == "optimism") return ["0x0b2c639c533813f4aa9d7837caf62653d097ff85"];
  return [];
}

/** A context list: comma-separated addresses, any case, blanks ignored; lowercase out. */
export function splitAddresses(list: string): string[] {
  const out: string[] = [];
  const parts = list.split(",");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i].trim().toLowerCase();
    if (part.length > 0) out.push(part);
  }
  return out;
}

/** The tokens to follow: the chain's listed ones, then the context's extra ones, each once. */
export function tokensToFollow(network: string, extra: string): string[] {
  const all = listedTokensOf(network).concat(splitAddresses(extra));
  const out: string[] = [];
  for (let i = 0; i < all.length; i++) if (!out.includes(all[i])) out.push(all[i]);
  return out;
}
