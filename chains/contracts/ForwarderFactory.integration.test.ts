/**
 * The forwarder factory on a real anvil, with plain anvil dev accounts (no KMS here): addresses
 * agree on- and off-chain, sweeps move exact amounts to the hot wallet, and the address accepts
 * plain 21,000-gas transfers before and after a sweep.
 */
import {
  type Address,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  parseEventLogs,
  zeroAddress,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../../ops/devstack/anvil.js";
import {
  depositAddressOf,
  depositSalt,
  forwarderFactory,
  forwarderInitCodeHash,
  noReturnToken,
  testToken,
} from "./index.js";

// anvil's well-known dev keys (public test mnemonic), only ever used against a local anvil.
const HOT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const DEPOSITOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

let anvil: Anvil;
const hot = privateKeyToAccount(HOT_KEY);
const depositor = privateKeyToAccount(DEPOSITOR_KEY);
let publicClient: ReturnType<typeof createPublicClient>;
let hotClient: ReturnType<typeof createWalletClient>;
let depositorClient: ReturnType<typeof createWalletClient>;
let factory: Address;
let token: Address;
let usdtLike: Address;

async function deploy(abi: typeof testToken.abi, bytecode: Hex, args: unknown[] = []) {
  const hash = await hotClient.deployContract({
    abi,
    bytecode,
    args,
    account: hot,
    chain: foundry,
  });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (!receipt.contractAddress) throw new Error("no contract address");
  return getAddress(receipt.contractAddress);
}

async function sendPlain(to: Address, value: bigint) {
  const hash = await depositorClient.sendTransaction({
    account: depositor,
    chain: foundry,
    to,
    value,
    gas: 21_000n,
  });
  return publicClient.waitForTransactionReceipt({ hash });
}

async function mint(tokenAddress: Address, to: Address, value: bigint) {
  const hash = await depositorClient.writeContract({
    account: depositor,
    chain: foundry,
    address: tokenAddress,
    abi: testToken.abi,
    functionName: "mint",
    args: [to, value],
  });
  await publicClient.waitForTransactionReceipt({ hash });
}

async function tokenBalance(tokenAddress: Address, owner: Address): Promise<bigint> {
  return (await publicClient.readContract({
    address: tokenAddress,
    abi: testToken.abi,
    functionName: "balanceOf",
    args: [owner],
  })) as bigint;
}

async function sweep(salts: Hex[], tokens: Address[]) {
  const hash = await hotClient.writeContract({
    account: hot,
    chain: foundry,
    address: factory,
    abi: forwarderFactory.abi,
    functionName: "sweep",
    args: [salts, tokens],
  });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  const events = parseEventLogs({
    abi: forwarderFactory.abi,
    logs: receipt.logs,
    eventName: "Swept",
  }) as unknown as {
    args: { salt: Hex; depositAddress: Address; token: Address; amount: bigint };
  }[];
  return { receipt, events: events.map((e) => e.args) };
}

beforeAll(async () => {
  anvil = await startAnvil({ chainId: foundry.id, port: 0 });
  const transport = http(anvil.rpcUrl);
  publicClient = createPublicClient({ chain: foundry, transport });
  hotClient = createWalletClient({ chain: foundry, transport });
  depositorClient = createWalletClient({ chain: foundry, transport });
  factory = await deploy(forwarderFactory.abi, forwarderFactory.bytecode, [hot.address]);
  token = await deploy(testToken.abi, testToken.bytecode);
  usdtLike = await deploy(noReturnToken.abi, noReturnToken.bytecode);
});

afterAll(async () => {
  await anvil?.stop();
});

describe("ForwarderFactory on anvil", () => {
  it("computeAddress(salt) equals viem's CREATE2 address, and the init code hash matches", async () => {
    expect(
      await publicClient.readContract({
        address: factory,
        abi: forwarderFactory.abi,
        functionName: "FORWARDER_INIT_CODE_HASH",
      }),
    ).toBe(forwarderInitCodeHash);
    for (const customer of ["alice", "bob", "c-0001", "顧客"]) {
      const salt = depositSalt(customer);
      const onChain = await publicClient.readContract({
        address: factory,
        abi: forwarderFactory.abi,
        functionName: "computeAddress",
        args: [salt],
      });
      expect(onChain).toBe(depositAddressOf(factory, salt));
    }
  });

  it("sweeps native + ERC-20 (incl. no-return tokens) to the hot wallet; the address takes 21,000-gas transfers before and after", async () => {
    const salt = depositSalt("alice");
    const address = depositAddressOf(factory, salt);

    const first = await sendPlain(address, 1_234_567_890_123n);
    expect(first.status).toBe("success");
    expect(first.gasUsed).toBe(21_000n);
    await mint(token, address, 10n ** 18n + 7n);
    await mint(usdtLike, address, 42n);

    const hotNativeBefore = await publicClient.getBalance({ address: hot.address });
    const hotTokenBefore = await tokenBalance(token, hot.address);
    const { receipt, events } = await sweep([salt], [token, usdtLike]);
    expect(receipt.status).toBe("success");
    expect(events).toEqual([
      { salt, depositAddress: address, token: zeroAddress, amount: 1_234_567_890_123n },
      { salt, depositAddress: address, token, amount: 10n ** 18n + 7n },
      { salt, depositAddress: address, token: usdtLike, amount: 42n },
    ]);
    const fee = receipt.gasUsed * receipt.effectiveGasPrice;
    expect(await publicClient.getBalance({ address: hot.address })).toBe(
      hotNativeBefore + 1_234_567_890_123n - fee,
    );
    expect(await tokenBalance(token, hot.address)).toBe(hotTokenBefore + 10n ** 18n + 7n);
    expect(await tokenBalance(usdtLike, hot.address)).toBe(42n);
    expect(await publicClient.getBalance({ address })).toBe(0n);
    expect(await tokenBalance(token, address)).toBe(0n);
    // EIP-6780: created and destroyed in one transaction, so no code and nonce 0 remain.
    expect(await publicClient.getCode({ address })).toBeUndefined();
    expect(await publicClient.getTransactionCount({ address })).toBe(0);

    const second = await sendPlain(address, 5n);
    expect(second.status).toBe("success");
    expect(await publicClient.getBalance({ address })).toBe(5n);

    // The same salt sweeps again (CREATE2 at the same address succeeds once more).
    const again = await sweep([salt], [token]);
    expect(again.receipt.status).toBe("success");
    expect(again.events).toEqual([
      { salt, depositAddress: address, token: zeroAddress, amount: 5n },
    ]);
    expect((await sendPlain(address, 1n)).status).toBe("success");
  });

  it("sweeps many salts in one call and emits nothing for empty addresses", async () => {
    const salts = Array.from({ length: 20 }, (_, i) => depositSalt(`batch-${i}`));
    for (const [i, salt] of salts.entries()) {
      if (i % 4 === 3) continue; // every fourth address stays empty
      await mint(token, depositAddressOf(factory, salt), BigInt(1000 + i));
    }
    const hotTokenBefore = await tokenBalance(token, hot.address);
    const { receipt, events } = await sweep(salts, [token]);
    expect(receipt.status).toBe("success");
    expect(events).toHaveLength(15);
    const total = events.reduce((sum, e) => sum + e.amount, 0n);
    const expected = salts.reduce((sum, _s, i) => (i % 4 === 3 ? sum : sum + BigInt(1000 + i)), 0n);
    expect(total).toBe(expected);
    expect(await tokenBalance(token, hot.address)).toBe(hotTokenBefore + expected);
    for (const e of events) expect(e.depositAddress).toBe(depositAddressOf(factory, e.salt));
  });

  it("only the hot wallet may sweep", async () => {
    const salt = depositSalt("mallory-target");
    await sendPlain(depositAddressOf(factory, salt), 1000n);
    await expect(
      depositorClient.writeContract({
        account: depositor,
        chain: foundry,
        address: factory,
        abi: forwarderFactory.abi,
        functionName: "sweep",
        args: [[salt], []],
      }),
    ).rejects.toThrow(/NotHotWallet/);
    expect(await publicClient.getBalance({ address: depositAddressOf(factory, salt) })).toBe(1000n);
  });
});
