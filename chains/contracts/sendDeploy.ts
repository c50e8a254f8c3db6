/**
 * Sending a contract creation from an account: pure chain code (no database, no key handling of
 * its own). The hot wallet deploys (ForwarderFactory: signer/deposit-addresses/deployFactory.ts;
 * ReservesAttestor: ledger/attest/deploy.ts) go through here: `sendDeploy` directly (dev stack,
 * tests), or the signer's stored deploy (signer/storedDeploy.ts, the CLI), which stores the signed
 * bytes of `signDeploy` before sending them and waits with `waitForDeploy`.
 */
import {
  type Account,
  type Address,
  getAddress,
  getContractAddress,
  type Hex,
  keccak256,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import type { ChainConfig } from "../config.js";
import { DeployFeeAboveCapError } from "../errors.js";

/** A deploy sent and mined: its transaction, successful receipt and new contract. */
export type SentDeploy = { hash: Hex; receipt: TransactionReceipt; address: Address };

/**
 * How a deploy function gets its contract creation (`data`: bytecode + constructor args) sent and
 * mined. `name` names the contract (errors, and the stored deploy's identity).
 */
export type DeploySender = (tx: {
  name: string;
  data: Hex;
  onSent?: (hash: Hex) => void;
}) => Promise<SentDeploy>;

export type SignedDeploy = {
  nonce: number;
  raw: Hex;
  hash: Hex;
  /** Where the contract will be: it follows from the sender and the nonce alone. */
  address: Address;
};

/** A deploy's fee fields: a legacy gas price, or EIP-1559's two. */
export type DeployFees =
  | { gasPrice: bigint }
  | { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };

/**
 * Sign a contract creation at `nonce` (the node's pending one when omitted). Its fees are viem's
 * estimate at the latest block, or `market`'s when given (the signer's, at the head the caller
 * read the nonce at, with that block's base fee: signer/storedDeploy.ts); either clamped to the
 * chain's cap. A cap below the base fee is refused (DeployFeeAboveCapError): the signed bytes are
 * all a `sendDeploy` ever sends, with no fee bump, so it would wait until the base fee falls.
 * Its gas limit is the node's estimate, or `gasLimit(estimate)` when given: the signer's rule for
 * its own sends (the chain's margin, signer/gas.ts gasLimitFor), which this chain code does not own.
 */
export async function signDeploy({
  chain,
  client,
  account,
  data,
  nonce,
  gasLimit,
  market,
}: {
  chain: Pick<ChainConfig, "key" | "chainId" | "feeModel" | "maxFeePerGas">;
  client: PublicClient;
  account: Account;
  data: Hex;
  nonce?: number | undefined;
  gasLimit?: ((estimate: bigint) => bigint) | undefined;
  market?: { fees: DeployFees; baseFee: bigint } | undefined;
}): Promise<SignedDeploy> {
  if (!account.signTransaction) throw new Error("the hot wallet account cannot sign transactions");
  const cap = chain.maxFeePerGas;
  const baseFee =
    market?.baseFee ?? (await client.getBlock({ blockTag: "latest" })).baseFeePerGas ?? 0n;
  if (baseFee > cap) throw new DeployFeeAboveCapError(chain.key, cap, baseFee);
  const gas =
    gasLimit === undefined ? undefined : gasLimit(await client.estimateGas({ account, data }));
  const request = await client.prepareTransactionRequest({
    account,
    chain: null,
    data,
    ...(nonce === undefined ? {} : { nonce }),
    ...(gas === undefined ? {} : { gas }),
    ...market?.fees,
    type: chain.feeModel === "legacy" ? "legacy" : "eip1559",
  } as Parameters<PublicClient["prepareTransactionRequest"]>[0]);
  const min = (a: bigint | undefined, b: bigint) => (a === undefined || a > b ? b : a);
  const fees =
    request.type === "legacy"
      ? { gasPrice: min(request.gasPrice, cap) }
      : {
          maxFeePerGas: min(request.maxFeePerGas, cap),
          // The tip may never exceed the max fee.
          maxPriorityFeePerGas: min(request.maxPriorityFeePerGas, min(request.maxFeePerGas, cap)),
        };
  const raw = await account.signTransaction({
    ...request,
    ...fees,
    chainId: chain.chainId,
  } as Parameters<NonNullable<Account["signTransaction"]>>[0]);
  return {
    nonce: request.nonce,
    raw,
    hash: keccak256(raw),
    address: getContractAddress({ from: account.address, nonce: BigInt(request.nonce) }),
  };
}

/** Wait for a successful receipt of the deploy `hash`; a revert or a receipt without a contract throws. */
export async function waitForDeploy({
  chain,
  client,
  hash,
  name,
}: {
  chain: ChainConfig;
  client: PublicClient;
  hash: Hex;
  name: string;
}): Promise<SentDeploy> {
  const receipt = await client.waitForTransactionReceipt({
    hash,
    confirmations: 1,
    pollingInterval: Math.min(1000, chain.blockTimeMs),
    timeout: 120_000,
  });
  if (receipt.status !== "success" || !receipt.contractAddress) {
    throw new Error(`${name} deploy ${hash} reverted`);
  }
  return { hash, receipt, address: getAddress(receipt.contractAddress) };
}

/**
 * Sign a contract creation with the account at the node's pending nonce, send it and wait for a
 * successful receipt. Nothing is stored: for the dev stack and tests, which deploy before any
 * signer runs; the CLI deploys through the signer's stored deploy instead.
 */
export async function sendDeploy({
  chain,
  client,
  account,
  sendRawTransaction,
  data,
  name,
  onSent,
}: {
  chain: ChainConfig;
  client: PublicClient;
  account: Account;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
  data: Hex;
  /** For the error when the deploy reverts. */
  name: string;
  onSent?: ((hash: Hex) => void) | undefined;
}): Promise<SentDeploy> {
  const signed = await signDeploy({ chain, client, account, data });
  const hash = await sendRawTransaction(signed.raw);
  onSent?.(hash);
  return waitForDeploy({ chain, client, hash, name });
}
