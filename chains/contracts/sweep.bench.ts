/**
 * Gas of a ForwarderFactory sweep per deposit address, by batch size, on a local anvil: each
 * address holds one ERC-20 balance and some native value. Picks `sweepBatchSize` (block gas limit
 * vs per-transaction overhead) and the sweep thresholds (a sweep must be worth its gas).
 */
import {
  createPublicClient,
  createWalletClient,
  encodeDeployData,
  encodeFunctionData,
  getAddress,
  type Hex,
  http,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { figure, machineLine } from "../../ops/bench/machine.js";
import { startAnvil } from "../../ops/devstack/anvil.js";
import { depositAddressOf, depositSalt, forwarderFactory, testToken } from "./index.js";

const BATCHES = [1, 10, 50, 100];
// anvil's first dev key: a local benchmark chain only.
const hot = privateKeyToAccount(
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
);

console.log(
  `workload: ForwarderFactory.sweep of N deposit addresses, each with 1 ERC-20 balance + native value, N in ${BATCHES.join(", ")}`,
);
console.log(machineLine());
const anvil = await startAnvil({ chainId: foundry.id, port: 0, args: ["--gas-limit", "60000000"] });
try {
  const transport = http(anvil.rpcUrl);
  const client = createPublicClient({ chain: foundry, transport });
  const wallet = createWalletClient({ account: hot, chain: foundry, transport });
  const deploy = async (data: Hex) => {
    const r = await client.waitForTransactionReceipt({
      hash: await wallet.sendTransaction({ data }),
    });
    return getAddress(r.contractAddress!);
  };
  const factory = await deploy(
    encodeDeployData({
      abi: forwarderFactory.abi,
      bytecode: forwarderFactory.bytecode,
      args: [hot.address],
    }),
  );
  const token = await deploy(
    encodeDeployData({ abi: testToken.abi, bytecode: testToken.bytecode }),
  );
  let n = 0;
  for (const size of BATCHES) {
    const salts = Array.from({ length: size }, () => depositSalt(`bench-${n++}`));
    for (const salt of salts) {
      const address = depositAddressOf(factory, salt);
      await wallet.sendTransaction({
        to: token,
        data: encodeFunctionData({
          abi: testToken.abi,
          functionName: "mint",
          args: [address, 10n ** 18n],
        }),
      });
      await wallet.sendTransaction({ to: address, value: 10n ** 15n });
    }
    const hash = await wallet.sendTransaction({
      to: factory,
      data: encodeFunctionData({
        abi: forwarderFactory.abi,
        functionName: "sweep",
        args: [salts, [token]],
      }),
      gas: 59_000_000n,
    });
    const receipt = await client.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new Error(`sweep of ${size} reverted`);
    figure(`batch ${size}: gas per address`, Number(receipt.gasUsed) / size, "gas");
    figure(`batch ${size}: gas per transaction`, Number(receipt.gasUsed), "gas");
  }
} finally {
  await anvil.stop();
}
