// biome-ignore-all lint/style/useImportType: AssemblyScript has no type-only imports
import { Address, dataSource, ethereum } from "@graphprotocol/graph-ts";
import { ForwarderFactory, Swept } from "../generated/ForwarderFactory/ForwarderFactory";
import { CustodyWallet, Sweep } from "../generated/schema";
import { Token } from "../generated/templates";
import { chainIdOf, splitAddresses, tokensToFollow } from "./networks";

/**
 * Runs once, at the factory's start block: registers the hot wallet (the factory's immutable
 * `hotWallet`, so no configuration can get it wrong) and the configured cold wallets, and starts
 * following each listed token's transfers.
 */
export function handleSetUp(_block: ethereum.Block): void {
  const chainId = chainIdOf(dataSource.network());
  const factory = ForwarderFactory.bind(dataSource.address());
  const hot = factory.try_hotWallet();
  if (!hot.reverted) saveWallet(hot.value, "hot", chainId);
  // context values: comma-separated addresses ("" for none)
  const context = dataSource.context();
  const cold = splitAddresses(context.getString("coldWallets"));
  for (let i = 0; i < cold.length; i++) saveWallet(Address.fromString(cold[i]), "cold", chainId);
  const tokens = tokensToFollow(dataSource.network(), context.getString("tokens"));
  for (let i = 0; i < tokens.length; i++) Token.create(Address.fromString(tokens[i]));
}

export function handleSwept(event: Swept): void {
  const sweep = new Sweep(event.transaction.hash.toHexString() + "-" + event.logIndex.toString());
  sweep.chainId = chainIdOf(dataSource.network());
  sweep.factory = event.address;
  sweep.salt = event.params.salt;
  sweep.depositAddress = event.params.depositAddress;
  sweep.token = event.params.token;
  sweep.amount = event.params.amount;
  sweep.blockNumber = event.block.number;
  sweep.timestamp = event.block.timestamp;
  sweep.transactionHash = event.transaction.hash;
  sweep.logIndex = event.logIndex.toI32();
  sweep.save();
}

function saveWallet(address: Address, kind: string, chainId: i32): void {
  const wallet = new CustodyWallet(address.toHexString());
  wallet.chainId = chainId;
  wallet.address = address;
  wallet.kind = kind;
  wallet.save();
}
