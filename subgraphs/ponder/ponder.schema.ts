/**
 * The same entities and field names as the subgraph (../custody/schema.graphql), so a dApp's query
 * works against either; schemaParity.test.ts compares the two. Bytes there is hex here, BigInt is
 * bigint, Int is integer; ids are `${transactionHash}-${logIndex}` (wallets: the address).
 */
import { onchainTable } from "ponder";

export const attestation = onchainTable("attestation", (t) => ({
  id: t.text().primaryKey(),
  chainId: t.integer().notNull(),
  contract: t.hex().notNull(),
  asset: t.hex().notNull(),
  block: t.bigint().notNull(),
  reserves: t.bigint().notNull(),
  liabilities: t.bigint().notNull(),
  liabilitiesRoot: t.hex().notNull(),
  addressesRoot: t.hex().notNull(),
  reportHash: t.hex().notNull(),
  blockNumber: t.bigint().notNull(),
  timestamp: t.bigint().notNull(),
  transactionHash: t.hex().notNull(),
  logIndex: t.integer().notNull(),
}));

export const sweep = onchainTable("sweep", (t) => ({
  id: t.text().primaryKey(),
  chainId: t.integer().notNull(),
  factory: t.hex().notNull(),
  salt: t.hex().notNull(),
  depositAddress: t.hex().notNull(),
  token: t.hex().notNull(),
  amount: t.bigint().notNull(),
  blockNumber: t.bigint().notNull(),
  timestamp: t.bigint().notNull(),
  transactionHash: t.hex().notNull(),
  logIndex: t.integer().notNull(),
}));

export const custodyWallet = onchainTable("custody_wallet", (t) => ({
  id: t.text().primaryKey(),
  chainId: t.integer().notNull(),
  address: t.hex().notNull(),
  kind: t.text().notNull(),
}));

export const walletTransfer = onchainTable("wallet_transfer", (t) => ({
  id: t.text().primaryKey(),
  chainId: t.integer().notNull(),
  token: t.hex().notNull(),
  from: t.hex().notNull(),
  to: t.hex().notNull(),
  amount: t.bigint().notNull(),
  fromKind: t.text(),
  toKind: t.text(),
  blockNumber: t.bigint().notNull(),
  timestamp: t.bigint().notNull(),
  transactionHash: t.hex().notNull(),
  logIndex: t.integer().notNull(),
}));
