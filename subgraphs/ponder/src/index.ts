/**
 * The same mappings as the subgraph (../custody/src): each event becomes one row whose id is
 * `${transactionHash}-${logIndex}`. Inserts ignore a repeated id: a transfer between two custody
 * wallets matches both of the Token filters.
 */
import { ponder } from "ponder:registry";
import { attestation, custodyWallet, sweep, walletTransfer } from "ponder:schema";
import { readDeployment } from "../deployment.js";

const deployment = readDeployment();
const kindOf = new Map<`0x${string}`, "hot" | "cold">([
  ...deployment.coldWallets.map((a) => [a, "cold"] as const),
  ...deployment.hotWallets.map((a) => [a, "hot"] as const),
]);
const idOf = (event: { transaction: { hash: string }; log: { logIndex: number } }) =>
  `${event.transaction.hash}-${event.log.logIndex}`;

ponder.on("ForwarderFactory:setup", async ({ context }) => {
  for (const [address, kind] of kindOf)
    await context.db
      .insert(custodyWallet)
      .values({ id: address, chainId: deployment.chainId, address, kind })
      .onConflictDoNothing();
});

ponder.on("ForwarderFactory:Swept", async ({ event, context }) => {
  await context.db
    .insert(sweep)
    .values({
      id: idOf(event),
      chainId: deployment.chainId,
      factory: event.log.address.toLowerCase() as `0x${string}`,
      salt: event.args.salt,
      depositAddress: event.args.depositAddress.toLowerCase() as `0x${string}`,
      token: event.args.token.toLowerCase() as `0x${string}`,
      amount: event.args.amount,
      blockNumber: event.block.number,
      timestamp: event.block.timestamp,
      transactionHash: event.transaction.hash,
      logIndex: event.log.logIndex,
    })
    .onConflictDoNothing();
});

ponder.on("ReservesAttestor:Attested", async ({ event, context }) => {
  await context.db
    .insert(attestation)
    .values({
      id: idOf(event),
      chainId: deployment.chainId,
      contract: event.log.address.toLowerCase() as `0x${string}`,
      asset: event.args.asset.toLowerCase() as `0x${string}`,
      block: event.args.block,
      reserves: event.args.reserves,
      liabilities: event.args.liabilities,
      liabilitiesRoot: event.args.liabilitiesRoot,
      addressesRoot: event.args.addressesRoot,
      reportHash: event.args.reportHash,
      blockNumber: event.block.number,
      timestamp: event.block.timestamp,
      transactionHash: event.transaction.hash,
      logIndex: event.log.logIndex,
    })
    .onConflictDoNothing();
});

ponder.on("Token:Transfer", async ({ event, context }) => {
  const from = event.args.from.toLowerCase() as `0x${string}`;
  const to = event.args.to.toLowerCase() as `0x${string}`;
  const fromKind = kindOf.get(from) ?? null;
  const toKind = kindOf.get(to) ?? null;
  if (fromKind === null && toKind === null) return;
  await context.db
    .insert(walletTransfer)
    .values({
      id: idOf(event),
      chainId: deployment.chainId,
      token: event.log.address.toLowerCase() as `0x${string}`,
      from,
      to,
      amount: event.args.value,
      fromKind,
      toKind,
      blockNumber: event.block.number,
      timestamp: event.block.timestamp,
      transactionHash: event.transaction.hash,
      logIndex: event.log.logIndex,
    })
    .onConflictDoNothing();
});
