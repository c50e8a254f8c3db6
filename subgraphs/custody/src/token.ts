// biome-ignore-all lint/style/useImportType: AssemblyScript has no type-only imports
import { dataSource } from "@graphprotocol/graph-ts";
import { CustodyWallet, WalletTransfer } from "../generated/schema";
import { Transfer } from "../generated/templates/Token/ERC20";
import { chainIdOf } from "./networks";

/** Keeps a listed token's Transfer only when a hot or cold wallet is on either side. */
export function handleTransfer(event: Transfer): void {
  const from = CustodyWallet.load(event.params.from.toHexString());
  const to = CustodyWallet.load(event.params.to.toHexString());
  if (from == null && to == null) return;
  const transfer = new WalletTransfer(
    event.transaction.hash.toHexString() + "-" + event.logIndex.toString(),
  );
  transfer.chainId = chainIdOf(dataSource.network());
  transfer.token = event.address;
  transfer.from = event.params.from;
  transfer.to = event.params.to;
  transfer.amount = event.params.value;
  if (from != null) transfer.fromKind = from.kind;
  if (to != null) transfer.toKind = to.kind;
  transfer.blockNumber = event.block.number;
  transfer.timestamp = event.block.timestamp;
  transfer.transactionHash = event.transaction.hash;
  transfer.logIndex = event.logIndex.toI32();
  transfer.save();
}
