/**
 * A deposit address exists on every chain where the same ForwarderFactory address (with the same
 * forwarder init code) is ours: CREATE2(factory, salt, init code) does not depend on the chain. A
 * deterministic deploy (same hot wallet, same nonce) gives the same factory address on each chain,
 * so money a customer sends to "their" address on another such chain is ours and sweepable. We
 * therefore record the address on every chain that shares the factory (chain.deposit_addresses
 * and the watched set, per chain), both when a customer is allocated and
 * when the factory is recorded on one more chain later. Chains whose factory has another address
 * are not watched for it: there the address is not ours to sweep (reconciliation's per-address
 * checks do not cover it either; see docs/contracts.md).
 *
 * Locking: allocation holds FACTORY_SET_LOCK shared, recording a factory holds it exclusive, so a
 * customer allocated while a factory is being recorded elsewhere is seen by one side or the other.
 * A per-customer lock orders concurrent allocations of one customer on two chains (no deadlock
 * between their sibling inserts).
 */
import type pg from "pg";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { addWatchedAddresses, notifyWatchedAddress } from "../watched.js";

type Queryable = Pick<pg.ClientBase, "query">;

/** First key of this module's advisory locks ("cdpa"). */
const LOCK_NAMESPACE = 0x63647061;
/** Second key of the factory-set lock (customer locks use hashtext(customer id)). */
const FACTORY_SET_LOCK = 0;

/** In an allocation transaction: no factory may be recorded meanwhile; one allocation per customer. */
export async function lockForAllocation(client: Queryable, customerId: string): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock_shared($1, $2)", [
    LOCK_NAMESPACE,
    FACTORY_SET_LOCK,
  ]);
  await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [
    LOCK_NAMESPACE,
    `customer:${customerId}`,
  ]);
}

/** In the transaction that records a factory: wait for running allocations, block new ones. */
export async function lockForFactoryRecord(client: Queryable): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_NAMESPACE, FACTORY_SET_LOCK]);
}

/**
 * Record `address` for the customer on every other chain whose ForwarderFactory is `factory` with
 * the same forwarder init code hash, and notify their indexers (on commit). Idempotent. Returns
 * the chains where it was newly recorded.
 */
export async function recordOnSharingChains(
  client: Queryable,
  a: {
    chainId: number;
    customerId: string;
    address: string;
    salt: string;
    factory: string;
    initCodeHash: string | null;
  },
): Promise<number[]> {
  const { rows } = await client.query<{ chain_id: string }>(
    `WITH siblings AS (
       SELECT chain_id FROM chain.contracts
        WHERE name = 'ForwarderFactory' AND address = $1 AND chain_id <> $2
          AND init_code_hash IS NOT DISTINCT FROM $3),
     added AS (
       INSERT INTO chain.deposit_addresses (chain_id, customer_id, address, salt, factory)
       SELECT chain_id, $4, $5, $6, $1 FROM siblings
       ON CONFLICT DO NOTHING
       RETURNING chain_id)
     SELECT chain_id FROM added ORDER BY chain_id`,
    [
      a.factory.toLowerCase(),
      a.chainId,
      a.initCodeHash?.toLowerCase() ?? null,
      a.customerId,
      a.address.toLowerCase(),
      a.salt.toLowerCase(),
    ],
  );
  // Usually no sibling chain: then nothing is added and no second statement is sent.
  const address = a.address.toLowerCase();
  const watched = await addWatchedAddresses(
    client,
    rows.map((r) => ({
      chainId: Number(r.chain_id),
      address,
      kind: "deposit",
      owner: a.customerId,
    })),
    { ifAbsent: true },
  );
  const chains = watched.map((w) => w.chainId);
  for (const chainId of chains) await notifyWatchedAddress(client, chainId, [address]);
  return chains;
}

/**
 * A factory was just recorded on `chainId`: every customer already allocated on another chain with
 * the same factory address and init code gets the same address recorded and watched here.
 * Returns how many addresses were added.
 */
export async function adoptSharedDepositAddresses(
  client: Queryable,
  f: { chainId: number; address: string; initCodeHash: string | null },
): Promise<number> {
  const { rows } = await client.query<{ customer_id: string; address: string }>(
    `WITH source AS (
       SELECT DISTINCT ON (d.customer_id) d.customer_id, d.address, d.salt
         FROM chain.deposit_addresses d
         JOIN chain.contracts c
           ON c.chain_id = d.chain_id AND c.name = 'ForwarderFactory' AND c.address = d.factory
        WHERE d.factory = $1 AND d.chain_id <> $2 AND c.init_code_hash IS NOT DISTINCT FROM $3
        ORDER BY d.customer_id, d.chain_id),
     added AS (
       INSERT INTO chain.deposit_addresses (chain_id, customer_id, address, salt, factory)
       SELECT $2, customer_id, address, salt, $1 FROM source
       ON CONFLICT DO NOTHING
       RETURNING customer_id, address)
     SELECT customer_id, address FROM added`,
    [f.address.toLowerCase(), f.chainId, f.initCodeHash?.toLowerCase() ?? null],
  );
  // One more statement for all the adopted rows (the watched set is the indexer's table).
  const watched = await addWatchedAddresses(
    client,
    rows.map((r) => ({
      chainId: f.chainId,
      address: r.address,
      kind: "deposit",
      owner: r.customer_id,
    })),
    { ifAbsent: true },
  );
  // Named, not chain-only: a chain-only notification is read back by creation time, and rows of a
  // long adoption carry its start time (now()), which a read in between may already be past.
  const n = watched.length;
  if (n > 0)
    await notifyWatchedAddress(
      client,
      f.chainId,
      watched.map((w) => w.address),
    );
  return n;
}

/**
 * For a chain whose factory is already recorded (e.g. by a version before this rule): adopt every
 * customer allocated with the same factory address on another chain. Idempotent; run by
 * `custody-node contracts deploy` when the factory exists. Returns how many addresses were added.
 */
export async function adoptForRecordedFactory(pool: Pool, chainId: number): Promise<number> {
  return withTransaction(pool, async (client) => {
    await lockForFactoryRecord(client);
    const { rows } = await client.query<{ address: string; init_code_hash: string | null }>(
      `SELECT address, init_code_hash FROM chain.contracts
        WHERE chain_id = $1 AND name = 'ForwarderFactory'`,
      [chainId],
    );
    const factory = rows[0];
    if (!factory) return 0;
    return adoptSharedDepositAddresses(client, {
      chainId,
      address: factory.address,
      initCodeHash: factory.init_code_hash,
    });
  });
}
