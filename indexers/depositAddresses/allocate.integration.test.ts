/**
 * Factory deploy + allocation against real Postgres (all module migrations) and anvil. The deploy
 * here signs with an anvil dev key; the KMS-backed deploy is covered by the CLI test.
 */
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { depositAddressOf, depositSalt, forwarderFactory } from "../../chains/contracts/index.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { waitFor } from "../../ops/testing/wait.js";
import { deployForwarderFactory } from "../../signer/deposit-addresses/index.js";
import { WATCHED_CHANNEL } from "../watched.js";
import { allocateDepositAddress, getDepositAddress } from "./allocate.js";

const HOT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

let ctx: TestContext;
let client: ReturnType<typeof createPublicClient>;
const hot = privateKeyToAccount(HOT_KEY);

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }, { chainId: 31338 }] });
  client = createPublicClient({ transport: http(ctx.anvils[0]!.rpcUrl) });
});
afterAll(async () => {
  await ctx?.cleanup();
});

async function deploy() {
  return deployForwarderFactory({
    common: ctx.common,
    pool: ctx.db.pool,
    chain: ctx.config.chains[0]!,
    client: client as never,
    account: hot,
    sendRawTransaction: (raw) =>
      client.request({ method: "eth_sendRawTransaction", params: [raw] }),
  });
}

describe("deposit address allocation", () => {
  it("refuses to allocate before a factory is deployed, and changes nothing", async () => {
    // Chain 31338 never gets a factory in this file, whatever order the tests run in.
    await expect(
      allocateDepositAddress(
        { common: ctx.common, pool: ctx.db.pool },
        { chainId: 31338, customerId: "alice" },
      ),
    ).rejects.toMatchObject({ code: "DEPOSIT_FACTORY_NOT_DEPLOYED" });
    const { rows } = await ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.custody_addresses WHERE chain_id = 31338",
    );
    expect(rows[0].n).toBe(0);
  });

  it("deploys the factory once and records it", async () => {
    const first = await deploy();
    expect(first.deployed).toBe(true);
    expect(first.contract.hotWallet).toBe(hot.address);
    expect(await client.getCode({ address: first.contract.address })).toMatch(/^0x[0-9a-f]{100,}/);
    const again = await deploy();
    expect(again.deployed).toBe(false);
    expect(again.contract.address).toBe(first.contract.address);
    const watched = await ctx.db.pool.query(
      "SELECT address FROM chain.custody_addresses WHERE kind = 'hot'",
    );
    expect(watched.rows).toEqual([{ address: hot.address.toLowerCase() }]);
    const { rows } = await ctx.db.pool.query("SELECT address, hot_wallet FROM chain.contracts");
    expect(rows).toEqual([
      { address: first.contract.address.toLowerCase(), hot_wallet: hot.address.toLowerCase() },
    ]);
  });

  it("allocates CREATE2(factory, keccak256(customer), init code), watched and notified in one transaction; idempotent", async () => {
    const factory = (await deploy()).contract.address;
    const listener = await ctx.db.pool.connect();
    const notifications: string[] = [];
    listener.on("notification", (n) => {
      if (n.channel === WATCHED_CHANNEL && n.payload) notifications.push(n.payload);
    });
    await listener.query(`LISTEN ${WATCHED_CHANNEL}`);
    try {
      const deps = { common: ctx.common, pool: ctx.db.pool };
      const a = await allocateDepositAddress(deps, { chainId: 31337, customerId: "alice" });
      expect(a.created).toBe(true);
      expect(a.address).toBe(depositAddressOf(factory, depositSalt("alice")));
      const onChain = await client.readContract({
        address: factory,
        abi: forwarderFactory.abi,
        functionName: "computeAddress",
        args: [depositSalt("alice")],
      });
      expect(a.address).toBe(onChain);

      const again = await allocateDepositAddress(deps, { chainId: 31337, customerId: "alice" });
      expect(again.created).toBe(false);
      expect(again.address).toBe(a.address);

      // Concurrent first requests for one customer: one row, one address.
      const raced = await Promise.all(
        Array.from({ length: 6 }, () =>
          allocateDepositAddress(deps, { chainId: 31337, customerId: "bob" }),
        ),
      );
      expect(new Set(raced.map((r) => r.address)).size).toBe(1);
      expect(raced.filter((r) => r.created)).toHaveLength(1);

      const { rows } = await ctx.db.pool.query(
        "SELECT address, kind, owner FROM chain.custody_addresses WHERE chain_id = 31337 AND kind = 'deposit' ORDER BY owner",
      );
      expect(rows).toEqual([
        { address: a.address.toLowerCase(), kind: "deposit", owner: "alice" },
        { address: raced[0]!.address.toLowerCase(), kind: "deposit", owner: "bob" },
      ]);
      expect((await getDepositAddress(ctx.db.pool, 31337, "bob"))?.address).toBe(raced[0]!.address);
      // Postgres delivers notifications in commit order: once a marker sent after every
      // allocation has arrived, all of theirs have too (no sleep, no race with delivery).
      await ctx.db.pool.query("SELECT pg_notify($1, 'marker')", [WATCHED_CHANNEL]);
      await waitFor("the marker notification", async () => notifications.includes("marker"));
      // One per created address (alice, bob), naming it so indexers add it without a reload;
      // none for the idempotent repeats.
      expect(notifications.slice(0, notifications.indexOf("marker"))).toEqual([
        `31337:${a.address.toLowerCase()}`,
        `31337:${raced[0]!.address.toLowerCase()}`,
      ]);
    } finally {
      listener.release();
    }
  });

  it("rejects bad customer ids and unknown chains, changing nothing", async () => {
    const deps = { common: ctx.common, pool: ctx.db.pool };
    for (const customerId of ["", "has space", ":colon-first", "x".repeat(129)]) {
      await expect(
        allocateDepositAddress(deps, { chainId: 31337, customerId }),
      ).rejects.toMatchObject({ code: "DEPOSIT_INVALID_CUSTOMER" });
    }
    await expect(
      allocateDepositAddress(deps, { chainId: 999, customerId: "carol" }),
    ).rejects.toMatchObject({ code: "DEPOSIT_UNKNOWN_CHAIN" });
    // Chain 31338 is configured but has no factory.
    await expect(
      allocateDepositAddress(deps, { chainId: 31338, customerId: "carol" }),
    ).rejects.toMatchObject({ code: "DEPOSIT_FACTORY_NOT_DEPLOYED" });
    const { rows } = await ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.deposit_addresses WHERE customer_id NOT IN ('alice', 'bob')",
    );
    expect(rows[0].n).toBe(0);
  });

  it("gives no address from a factory that deploys another forwarder than this build's", async () => {
    const deps = { common: ctx.common, pool: ctx.db.pool };
    const recorded = await ctx.db.pool.query<{ init_code_hash: string }>(
      "SELECT init_code_hash FROM chain.contracts WHERE chain_id = 31337 AND name = 'ForwarderFactory'",
    );
    const other = `0x${"ab".repeat(32)}`;
    await ctx.db.pool.query(
      "UPDATE chain.contracts SET init_code_hash = $1 WHERE chain_id = 31337 AND name = 'ForwarderFactory'",
      [other],
    );
    try {
      await expect(
        allocateDepositAddress(deps, { chainId: 31337, customerId: "dora" }),
      ).rejects.toMatchObject({
        code: "DEPOSIT_FACTORY_MISMATCH",
        meta: { recorded_init_code_hash: other },
      });
      const { rows } = await ctx.db.pool.query(
        "SELECT count(*)::int AS n FROM chain.deposit_addresses WHERE customer_id = 'dora'",
      );
      expect(rows[0].n).toBe(0);
    } finally {
      await ctx.db.pool.query(
        "UPDATE chain.contracts SET init_code_hash = $1 WHERE chain_id = 31337 AND name = 'ForwarderFactory'",
        [recorded.rows[0]!.init_code_hash],
      );
    }
    expect(
      (await allocateDepositAddress(deps, { chainId: 31337, customerId: "dora" })).created,
    ).toBe(true);
  });
});
