// biome-ignore-all lint/style/useImportType: AssemblyScript has no type-only imports
import { dataSource } from "@graphprotocol/graph-ts";
import { Attested } from "../generated/ReservesAttestor/ReservesAttestor";
import { Attestation } from "../generated/schema";
import { chainIdOf } from "./networks";

export function handleAttested(event: Attested): void {
  const attestation = new Attestation(
    event.transaction.hash.toHexString() + "-" + event.logIndex.toString(),
  );
  attestation.chainId = chainIdOf(dataSource.network());
  attestation.contract = event.address;
  attestation.asset = event.params.asset;
  attestation.block = event.params.block;
  attestation.reserves = event.params.reserves;
  attestation.liabilities = event.params.liabilities;
  attestation.liabilitiesRoot = event.params.liabilitiesRoot;
  attestation.addressesRoot = event.params.addressesRoot;
  attestation.reportHash = event.params.reportHash;
  attestation.blockNumber = event.block.number;
  attestation.timestamp = event.block.timestamp;
  attestation.transactionHash = event.transaction.hash;
  attestation.logIndex = event.logIndex.toI32();
  attestation.save();
}
