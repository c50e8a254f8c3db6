/** Deploys the ForwarderFactory on a test anvil from anvil's first dev account (tests only). */
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { TestContext } from "../../ops/testing/context.js";
import { deployForwarderFactory } from "../../signer/deposit-addresses/index.js";

/** anvil's well-known dev account 0 (never a real key). */
export const ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

export async function deployTestFactory(ctx: TestContext, chainIndex = 0) {
  const client = createPublicClient({ transport: http(ctx.anvils[chainIndex]!.rpcUrl) });
  return deployForwarderFactory({
    common: ctx.common,
    pool: ctx.db.pool,
    chain: ctx.config.chains[chainIndex]!,
    client: client as never,
    account: privateKeyToAccount(ANVIL_KEY_0),
    sendRawTransaction: (raw) =>
      client.request({ method: "eth_sendRawTransaction", params: [raw] }),
  });
}
