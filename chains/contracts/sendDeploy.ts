/**
 * Sending a contract creation from an account: pure chain code (no database, no key handling of
 * its own). The hot wallet deploys (ForwarderFactory: signer/deposit-addresses/deployFactory.ts;
 * ReservesAttestor: ledger/attest/deploy.ts) go through here.
 */
import {
  type Account,
  type Address,
  getAddress,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import type { ChainConfig } from "../config.js";

/**
 * Sign a contract creation (`data`: bytecode + constructor args) with the hot wallet's account at
 * the nonce `takeNonce` gives (the caller's check that the nonce is the deploy's to take; without
 * it, the node's pending nonce), send it and wait for a successful receipt with the new contract's
 * address.
 */
export async function sendDeploy({
  chain,
  client,
  account,
  sendRawTransaction,
  data,
  name,
  onSent,
  takeNonce,
}: {
  chain: ChainConfig;
  client: PublicClient;
  account: Account;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
  data: Hex;
  /** For the error when the deploy reverts. */
  name: string;
  onSent?: (hash: Hex) => void;
  takeNonce?: (() => Promise<number>) | undefined;
}): Promise<{ hash: Hex; receipt: TransactionReceipt; address: Address }> {
  if (!account.signTransaction) throw new Error("the hot wallet account cannot sign transactions");
  const nonce = takeNonce ? await takeNonce() : undefined;
  const request = await client.prepareTransactionRequest({
    account,
    chain: null,
    data,
    ...(nonce === undefined ? {} : { nonce }),
    type: chain.feeModel === "legacy" ? "legacy" : "eip1559",
  });
  const raw = await account.signTransaction({ ...request, chainId: chain.chainId } as Parameters<
    NonNullable<Account["signTransaction"]>
  >[0]);
  const hash = await sendRawTransaction(raw);
  onSent?.(hash);
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
