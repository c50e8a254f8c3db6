/**
 * Allocation: a customer's deposit address on a chain is CREATE2(factory, keccak256(customer id),
 * forwarder init code), computed, never deployed. It is stored in chain.deposit_addresses and
 * the watched set (chain.custody_addresses, kind deposit, owner = customer id) in one
 * transaction that also notifies running indexers, so a deposit in the next block is seen. The
 * same transaction records it on every other chain whose factory has the same address (the
 * address exists there too: sharedFactories.ts).
 */
import type pg from "pg";
import { type Address, getAddress, type Hex } from "viem";
import {
  depositAddressOf,
  depositSalt,
  forwarderInitCodeHash,
} from "../../chains/contracts/index.js";
import { appendAudit } from "../../foundation/audit.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { addWatchedAddresses, notifyWatchedAddress } from "../watched.js";
import { FORWARDER_FACTORY, getContract } from "./contracts.js";
import {
  FactoryMismatchError,
  FactoryNotDeployedError,
  InvalidCustomerIdError,
  UnknownChainError,
} from "./errors.js";
import { lockForAllocation, recordOnSharingChains } from "./sharedFactories.js";

type Queryable = Pick<pg.ClientBase, "query">;

export type DepositAddress = {
  chainId: number;
  customerId: string;
  address: Address;
  salt: Hex;
  factory: Address;
  createdAt: Date;
};

/** Same rule as the ledger's `user:<id>` account names, so every allocated customer can be credited. */
const CUSTOMER_ID = /^[^\s:][^\s]{0,127}$/;

export function assertCustomerId(customerId: string): void {
  if (typeof customerId !== "string" || !CUSTOMER_ID.test(customerId)) {
    throw new InvalidCustomerIdError(String(customerId));
  }
}

type Row = {
  chain_id: string;
  customer_id: string;
  address: string;
  salt: string;
  factory: string;
  created_at: Date;
};

function fromRow(r: Row): DepositAddress {
  return {
    chainId: Number(r.chain_id),
    customerId: r.customer_id,
    address: getAddress(r.address),
    salt: r.salt as Hex,
    factory: getAddress(r.factory),
    createdAt: r.created_at,
  };
}

/**
 * Idempotent: the same (chain, customer) always returns the same address, allocated once. With
 * `actor`, the allocation's audit entry (`deposit_address.allocated`) commits with it.
 */
export async function allocateDepositAddress(
  { common, pool }: { common: Common; pool: Pool },
  { chainId, customerId, actor }: { chainId: number; customerId: string; actor?: string },
): Promise<
  DepositAddress & {
    created: boolean;
    /** Other chains where this call also recorded the address (same factory address there). */
    sharedWith?: number[];
  }
> {
  assertCustomerId(customerId);
  if (!common.config.chains.some((c) => c.chainId === chainId)) {
    throw new UnknownChainError(chainId);
  }
  const existing = await getDepositAddress(pool, chainId, customerId);
  if (existing) return { ...existing, created: false };

  const result = await withTransaction(pool, async (client) => {
    await lockForAllocation(client, customerId);
    const factory = await getContract(client, chainId, FORWARDER_FACTORY);
    if (!factory) throw new FactoryNotDeployedError(chainId);
    // Addresses are derived with this build's forwarder: only from a factory that deploys it (a
    // factory recorded before hashes were kept has none to compare).
    if (
      factory.initCodeHash !== null &&
      factory.initCodeHash.toLowerCase() !== forwarderInitCodeHash.toLowerCase()
    )
      throw new FactoryMismatchError(chainId, factory.initCodeHash, forwarderInitCodeHash);
    const salt = depositSalt(customerId);
    const address = depositAddressOf(factory.address, salt).toLowerCase();
    const inserted = await client.query<Row>(
      `INSERT INTO chain.deposit_addresses (chain_id, customer_id, address, salt, factory)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (chain_id, customer_id) DO NOTHING
       RETURNING *`,
      [chainId, customerId, address, salt, factory.address.toLowerCase()],
    );
    const row = inserted.rows[0];
    if (!row) {
      // A concurrent request for the same customer committed first: return its row.
      const raced = await getDepositAddress(client, chainId, customerId);
      if (!raced) throw new Error("deposit address insert conflicted but no row exists");
      return { ...raced, created: false, sharedWith: [] };
    }
    await addWatchedAddresses(client, [{ chainId, address, kind: "deposit", owner: customerId }]);
    // Running indexers add this address to their watched set (no reload of the whole set).
    await notifyWatchedAddress(client, chainId, [address]);
    const sharedWith = await recordOnSharingChains(client, {
      chainId,
      customerId,
      address,
      salt,
      factory: factory.address,
      initCodeHash: factory.initCodeHash,
    });
    if (actor !== undefined)
      await appendAudit(client, {
        actor,
        action: "deposit_address.allocated",
        entityType: "customer",
        entityId: customerId,
        details: { chain_id: chainId, address: getAddress(address) },
      });
    return { ...fromRow(row), created: true, sharedWith };
  });
  if (result.created) {
    common.logger.info({
      msg: "deposit address allocated",
      chain_id: chainId,
      customer_id: customerId,
      address: result.address,
      also_on_chains: result.sharedWith,
    });
  }
  return result;
}

export async function getDepositAddress(
  client: Queryable,
  chainId: number,
  customerId: string,
): Promise<DepositAddress | undefined> {
  const { rows } = await client.query<Row>(
    "SELECT * FROM chain.deposit_addresses WHERE chain_id = $1 AND customer_id = $2",
    [chainId, customerId],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** The customer a deposit address belongs to (lowercase or checksummed input). */
export async function findDepositAddress(
  client: Queryable,
  chainId: number,
  address: string,
): Promise<DepositAddress | undefined> {
  const { rows } = await client.query<Row>(
    "SELECT * FROM chain.deposit_addresses WHERE chain_id = $1 AND address = $2",
    [chainId, address.toLowerCase()],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}
