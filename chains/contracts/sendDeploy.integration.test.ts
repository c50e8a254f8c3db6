/**
 * A hot wallet's deploy is signed with fees under the chain's cap (`maxFeePerGas`), as every
 * withdrawal attempt is (signer/fees.ts): viem's estimate is clamped to it, and a cap below the
 * base fee the chain asks now is refused naming the cap (the stored bytes are never replaced, so a
 * deploy that cannot be included would hold the wallet's lease). Real anvil, anvil's dev key.
 */
import { createPublicClient, type Hex, http, type PublicClient, parseTransaction } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../../ops/devstack/anvil.js";
import { DeployFeeAboveCapError } from "../errors.js";
import { signDeploy } from "./sendDeploy.js";

// anvil's well-known dev key (public test mnemonic), only ever used against a local anvil.
const HOT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const hot = privateKeyToAccount(HOT_KEY);
/** Creation code of an empty contract (PUSH1 0, PUSH1 0, RETURN). */
const EMPTY_CONTRACT: Hex = "0x60006000f3";

let anvil: Anvil;
let client: PublicClient;
const baseFee = async () => (await client.getBlock({ blockTag: "latest" })).baseFeePerGas!;
const chainWithCap = (feeModel: "eip1559" | "legacy", maxFeePerGas: bigint) => ({
  key: "anvil",
  chainId: 31337,
  feeModel,
  maxFeePerGas,
});

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 31337, port: 0 });
  client = createPublicClient({ cacheTime: 0, transport: http(anvil.rpcUrl) }) as PublicClient;
});
afterAll(async () => {
  await anvil?.stop();
});

describe("signDeploy under the chain's fee cap", () => {
  it("clamps viem's estimate to the cap (eip1559 and legacy), and the deploy still mines", async () => {
    const cap = await baseFee();
    for (const feeModel of ["eip1559", "legacy"] as const) {
      const signed = await signDeploy({
        chain: chainWithCap(feeModel, cap),
        client,
        account: hot,
        data: EMPTY_CONTRACT,
      });
      const tx = parseTransaction(signed.raw);
      const fee = tx.type === "legacy" ? tx.gasPrice : tx.maxFeePerGas;
      expect([tx.type, fee! <= cap]).toEqual([feeModel, true]);
      if (tx.type === "eip1559") expect(tx.maxPriorityFeePerGas! <= cap).toBe(true);
      await client.request({ method: "eth_sendRawTransaction", params: [signed.raw] });
      const receipt = await client.waitForTransactionReceipt({ hash: signed.hash });
      expect([receipt.status, receipt.contractAddress]).toEqual([
        "success",
        signed.address.toLowerCase(),
      ]);
    }
  });

  it("refuses a cap below the chain's base fee, naming the cap; nothing signed", async () => {
    const cap = (await baseFee()) - 1n;
    const refused = await signDeploy({
      chain: chainWithCap("eip1559", cap),
      client,
      account: hot,
      data: EMPTY_CONTRACT,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DeployFeeAboveCapError);
    expect((refused as DeployFeeAboveCapError).code).toBe("CHAIN_DEPLOY_FEE_ABOVE_CAP");
    expect((refused as Error).message).toContain(`maxFeePerGas ${cap}`);
  });
});
