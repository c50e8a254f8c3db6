// biome-ignore-all lint/suspicious/noDoubleEquals: AssemblyScript compares strings by content with ==; its === compares references
// Facts per Graph network name that the manifest cannot carry per network: the chain id and the
// listed tokens of the built-in chains (chains/registry.ts). networks.test.ts checks this table
// against the registry and networks.json, so the three cannot drift apart.

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
