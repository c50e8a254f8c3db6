/**
 * Every chain an address exists on (issue 12 item 6), against two anvils, real Postgres and the
 * real indexer and crediting: the hot wallet deploys the ForwarderFactory at the same nonce on both
 * chains (same address). A customer allocated on chain A before the factory exists on B is adopted
 * by B when B's factory is recorded; one allocated on B is recorded on A at once. ETH sent to the
 * A-allocated address on chain B is a deposit fact on B for that customer, and is credited to them.
 */
import { createPublicClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { createDepositCrediting, createLedger } from "../../ledger/index.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { deployForwarderFactory } from "../../signer/deposit-addresses/index.js";
import { createIngestor, type Ingestor } from "../createIngestor.js";
import { anvilRpc, type Rpc, sendAndMine, syncToHead } from "../testing/chain.js";
import { allocateDepositAddress } from "./allocate.js";

const HOT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const A = 31337;
const B = 31338;
const AMOUNT = 7_000_000_000_000_000n;

let ctx: TestContext;
let rpcB: Rpc;
let ingestorB: Ingestor | undefined;
const hot = privateKeyToAccount(HOT_KEY);

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: A }, { chainId: B }] });
  rpcB = anvilRpc(ctx.anvils[1]!.rpcUrl);
});
afterAll(async () => {
  await ingestorB?.stop();
  await ctx?.cleanup();
});

async function deployOn(index: number) {
  const client = createPublicClient({ transport: http(ctx.anvils[index]!.rpcUrl) });
  return deployForwarderFactory({
    common: ctx.common,
    pool: ctx.db.pool,
    chain: ctx.config.chains[index]!,
    client: client as never,
    account: hot,
    sendRawTransaction: (raw) =>
      client.request({ method: "eth_sendRawTransaction", params: [raw] }),
  });
}

async function rowsOf(customerId: string) {
  const { rows } = await ctx.db.pool.query(
    `SELECT d.chain_id::int AS chain_id, d.address, c.kind, c.owner
       FROM chain.deposit_addresses d
       LEFT JOIN chain.custody_addresses c ON c.chain_id = d.chain_id AND c.address = d.address
      WHERE d.customer_id = $1 ORDER BY d.chain_id`,
    [customerId],
  );
  return rows;
}

describe("scenario, in order: a deposit address on every chain that shares its factory", () => {
  it("allocation before and after the second chain's factory; a deposit on B is alice's", async () => {
    const deps = { common: ctx.common, pool: ctx.db.pool };
    const factoryA = (await deployOn(0)).contract.address;

    const alice = await allocateDepositAddress(deps, { chainId: A, customerId: "alice" });
    expect(alice.sharedWith).toEqual([]); // B has no factory yet
    const aliceAddress = alice.address.toLowerCase();
    expect(await rowsOf("alice")).toEqual([
      { chain_id: A, address: aliceAddress, kind: "deposit", owner: "alice" },
    ]);

    // Deterministic deploy: the same hot wallet at the same nonce gives the same factory address.
    const factoryB = (await deployOn(1)).contract.address;
    expect(factoryB).toBe(factoryA);
    expect(await rowsOf("alice")).toEqual([
      { chain_id: A, address: aliceAddress, kind: "deposit", owner: "alice" },
      { chain_id: B, address: aliceAddress, kind: "deposit", owner: "alice" },
    ]);

    const bob = await allocateDepositAddress(deps, { chainId: B, customerId: "bob" });
    expect(bob.sharedWith).toEqual([A]);
    const bobAddress = bob.address.toLowerCase();
    expect(await rowsOf("bob")).toEqual([
      { chain_id: A, address: bobAddress, kind: "deposit", owner: "bob" },
      { chain_id: B, address: bobAddress, kind: "deposit", owner: "bob" },
    ]);
    // Asking on the other chain returns the same address, already there.
    const bobOnA = await allocateDepositAddress(deps, { chainId: A, customerId: "bob" });
    expect(bobOnA).toMatchObject({ created: false, address: bob.address });

    // ETH to alice's (A-allocated) address on chain B is a deposit fact on B for alice.
    const funder = (await rpcB<Hex[]>("eth_accounts"))[3]!;
    const sent = await sendAndMine(rpcB, { from: funder, to: alice.address, value: AMOUNT });
    for (let i = 0; i < 3; i++) await rpcB("evm_mine");
    const chainB = ctx.config.chains[1]!;
    ingestorB = await createIngestor({
      common: ctx.common,
      pool: ctx.db.pool,
      adapter: createEvmAdapter(chainB, { common: ctx.common }),
    });
    await syncToHead(ingestorB, ctx.db.pool, rpcB, B);
    const { rows: facts } = await ctx.db.pool.query(
      `SELECT f.kind, f.position, f.amount, f.status, ca.owner
         FROM chain.transfers f
         JOIN chain.custody_addresses ca ON ca.chain_id = f.chain_id AND ca.address = f.to_address
        WHERE f.chain_id = $1 AND f.tx_hash = $2`,
      [B, sent.transactionHash.toLowerCase()],
    );
    expect(facts).toEqual([
      {
        kind: "native",
        position: "tx",
        amount: AMOUNT,
        status: "confirmed",
        owner: "alice",
      },
    ]);

    // Crediting (the ledger's) finds alice through chain B's custody address row.
    const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
    await ledger.ensureAssetsFromConfig(ctx.config.chains);
    const crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    expect((await crediting.sweep({ chainId: B })).credited).toBe(1);
    const eth = `${B}:0x0000000000000000000000000000000000000000`;
    const account = await ledger.getAccount({ assetId: eth, name: "user:alice" });
    expect(account?.creditsPosted).toBe(AMOUNT);
  });

  it("then (both factories recorded) concurrent first allocations of one customer on both chains: no deadlock, one address", async () => {
    const deps = { common: ctx.common, pool: ctx.db.pool };
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        allocateDepositAddress(deps, { chainId: i % 2 === 0 ? A : B, customerId: "carol" }),
      ),
    );
    expect(new Set(results.map((r) => r.address)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const address = results[0]!.address.toLowerCase();
    expect(await rowsOf("carol")).toEqual([
      { chain_id: A, address, kind: "deposit", owner: "carol" },
      { chain_id: B, address, kind: "deposit", owner: "carol" },
    ]);
  });

  it("then: a customer missing on a sharing chain (allocated by an older version) is adopted when the deploy command runs again", async () => {
    await ctx.db.pool.query(
      "DELETE FROM chain.custody_addresses WHERE chain_id = $1 AND owner = 'carol'",
      [B],
    );
    await ctx.db.pool.query(
      "DELETE FROM chain.deposit_addresses WHERE chain_id = $1 AND customer_id = 'carol'",
      [B],
    );
    expect((await rowsOf("carol")).map((r) => r.chain_id)).toEqual([A]);
    expect((await deployOn(1)).deployed).toBe(false);
    const address = (await rowsOf("carol"))[0]!.address;
    expect(await rowsOf("carol")).toEqual([
      { chain_id: A, address, kind: "deposit", owner: "carol" },
      { chain_id: B, address, kind: "deposit", owner: "carol" },
    ]);
  });
});
