/**
 * What the exchange backend is told about a deposit a reorg took out and the chain mined again, on
 * anvil with the real indexer, crediting, deposit events and /v1/deposits (confirmations 3). The
 * re-mined copy is a new fact row; it is `credited` (event and API status) only once the ledger's
 * credit stands for it again, never while the copy waits for its confirmations and the credit is
 * under a reorg hold.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../../foundation/db.js";
import { insertBlocks, insertFacts, orphanAbove, recordReorg } from "../../indexers/store.js";
import { freshAddress, sendAndMine } from "../../indexers/testing/chain.js";
import {
  REORG_CHAIN,
  REORG_CHAIN_ID,
  type ReorgScenario,
  startReorgScenario,
} from "../../ledger/testing/reorgScenario.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { produceDepositEvents } from "./depositEvents.js";
import { produceLedgerEvents } from "./ledgerEvents.js";

const E17 = 10n ** 17n;
const D_ALICE = freshAddress(471);
const D_BOB = freshAddress(472);
const D_CAROL = freshAddress(473);
const D_DAVE = freshAddress(474);
const D_ERIN = freshAddress(475);

let t: ApiTestContext;
let s: ReorgScenario;

beforeAll(async () => {
  t = await createApiTestContext({
    chains: [REORG_CHAIN],
    // An endpoint (never called here) so events get their deliveries.
    configure: (ctx) => {
      const config = Object.freeze({
        ...ctx.config,
        webhooks: [{ url: "http://127.0.0.1:9/hook", secretEnv: "WH", events: ["*"] }],
        webhookSecrets: { WH: "secret" },
      });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  });
  s = await startReorgScenario(t.ctx, [
    { address: D_ALICE, owner: "alice" },
    { address: D_BOB, owner: "bob" },
    { address: D_CAROL, owner: "carol" },
    { address: D_DAVE, owner: "dave" },
    { address: D_ERIN, owner: "erin" },
  ]);
});
afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
});

const produce = () => produceDepositEvents({ common: t.ctx.common, pool: t.ctx.db.pool });
const factsOf = async (txHash: Hex) =>
  (
    await t.ctx.db.pool.query<{ id: string; status: string }>(
      "SELECT id::text, status FROM chain.transfers WHERE tx_hash = $1 ORDER BY id",
      [txHash],
    )
  ).rows;
const eventsOf = async (depositId: string) =>
  (
    await t.ctx.db.pool.query<{ type: string }>(
      `SELECT type FROM api.webhook_events WHERE payload->>'deposit_id' = $1
        ORDER BY type`,
      [depositId],
    )
  ).rows
    .map((r) => r.type)
    .sort();
/** The deposit's reorg-hold events, oldest first, with what the backend needs from each. */
const holdEventsOf = async (depositId: string) =>
  (
    await t.ctx.db.pool.query<{ type: string; data: Record<string, unknown> }>(
      `SELECT type, payload AS data FROM api.webhook_events
        WHERE payload->>'deposit_id' = $1 AND type LIKE 'deposit.reorg_%'
        ORDER BY created_at`,
      [depositId],
    )
  ).rows;
/** The `credit_id` of each `deposit.credited` event of the deposit, oldest first. */
const creditedIdsOf = async (depositId: string) =>
  (
    await t.ctx.db.pool.query<{ credit_id: string | null }>(
      `SELECT payload->>'credit_id' AS credit_id FROM api.webhook_events
        WHERE payload->>'deposit_id' = $1 AND type = 'deposit.credited' ORDER BY created_at`,
      [depositId],
    )
  ).rows.map((r) => r.credit_id);
/** The customer's native balance on the chain as /v1/customers/{id}/balances shows it. */
const balanceOf = async (customer: string) => {
  const res = await t.call(t.keys["ledger:read"], {
    method: "GET",
    url: `/v1/customers/${customer}/balances`,
  });
  expect(res.statusCode).toBe(200);
  return (res.json().balances as { assetId: string }[]).find(
    (b) => b.assetId === `${REORG_CHAIN_ID}:0x0000000000000000000000000000000000000000`,
  );
};
const apiStatus = async (depositId: string) => {
  const res = await t.call(t.keys["deposits:read"], {
    method: "GET",
    url: `/v1/deposits/${depositId}`,
  });
  expect(res.statusCode).toBe(200);
  return res.json().status as string;
};
/** The deposit's fact status and where the ledger's credit of it stands, as /v1/deposits/{id} says. */
const apiTruth = async (depositId: string) => {
  const res = await t.call(t.keys["deposits:read"], {
    method: "GET",
    url: `/v1/deposits/${depositId}`,
  });
  expect(res.statusCode).toBe(200);
  const { status, creditState } = res.json() as { status: string; creditState: string };
  return { status, creditState };
};

/**
 * A reorg back to the deposit's own branch, as the indexer stores it: the fact's block is canonical
 * again and its fact row comes back to life. Returns the fact's block (to orphan it again).
 */
async function reviveInItsBlock(factId: string, txHash: Hex, to: Hex, amount: bigint) {
  const { rows } = await t.ctx.db.pool.query<{
    block_number: string;
    block_hash: string;
    parent_hash: string;
    timestamp: number;
    tx_index: number;
    from_address: string;
  }>(
    `SELECT f.block_number::text, f.block_hash, b.parent_hash, extract(epoch FROM b.timestamp)::int AS timestamp,
            f.tx_index, f.from_address
       FROM chain.transfers f JOIN chain.blocks b ON b.chain_id = f.chain_id AND b.hash = f.block_hash
      WHERE f.id = $1`,
    [factId],
  );
  const old = rows[0]!;
  await withTransaction(t.ctx.db.pool, async (client) => {
    await orphanAbove(client, REORG_CHAIN_ID, BigInt(old.block_number) - 1n);
    await insertBlocks(client, REORG_CHAIN_ID, [
      {
        number: BigInt(old.block_number),
        hash: old.block_hash,
        parentHash: old.parent_hash,
        timestamp: old.timestamp,
      },
    ]);
    await insertFacts(
      client,
      REORG_CHAIN_ID,
      [
        {
          blockNumber: BigInt(old.block_number),
          blockHash: old.block_hash,
          txHash,
          txIndex: old.tx_index,
          position: "tx",
          kind: "native",
          asset: "0x0000000000000000000000000000000000000000",
          from: old.from_address,
          to: to.toLowerCase(),
          amount,
        },
      ],
      BigInt(old.block_number),
    );
  });
  return old;
}

describe("deposit truth after a reorg", () => {
  it("a re-mined copy of a held deposit is not credited (event or API) before it confirms and the hold is voided", async () => {
    const amount = 15n * E17;
    // The worker produces events every second: the credit's event goes out before the reorg.
    const { txHash, raw, swept } = await s.creditThenReorg(D_ALICE, amount, {
      beforeReorg: async () => {
        await produce();
      },
    });
    expect(swept.held).toBe(1);
    await produce();
    const [old] = await factsOf(txHash);
    expect(old!.status).toBe("orphaned");
    expect(await eventsOf(old!.id)).toEqual([
      "deposit.confirmed",
      "deposit.credited",
      "deposit.detected",
      "deposit.orphaned",
      "deposit.reorg_held",
    ]);
    // Held, not gone: the backend is told what is held and that it may come back.
    expect(await holdEventsOf(old!.id)).toMatchObject([
      {
        type: "deposit.reorg_held",
        data: {
          deposit_id: old!.id,
          customer_id: "alice",
          chain_id: REORG_CHAIN_ID,
          amount: amount.toString(),
          hold_amount: amount.toString(),
          shortfall_amount: "0",
          tx_hash: txHash,
        },
      },
    ]);
    // Orphaned, and held: the API tells it apart from a deposit never credited or taken back.
    expect(await apiTruth(old!.id)).toEqual({ status: "orphaned", creditState: "held" });
    // The balance shows the hold as pending (a pending debit, like a withdrawal's), not available.
    expect(await balanceOf("alice")).toMatchObject({
      posted: amount.toString(),
      pending: amount.toString(),
      available: "0",
    });

    // The same signed transaction mined again, one block: seen, 2 confirmations short.
    await s.rpc("eth_sendRawTransaction", [raw]);
    await s.mine(1);
    expect(await s.settle()).toMatchObject({ credited: 0, restored: 0 });
    const copy = (await factsOf(txHash)).find((f) => f.id !== old!.id)!;
    expect(copy.status).toBe("seen");
    // The ledger still holds the credit back from alice.
    const held = await t.ctx.db.pool.query<{ state: string }>(
      "SELECT state FROM ledger.deposit_credits WHERE tx_hash = $1",
      [txHash],
    );
    expect(held.rows.map((r) => r.state)).toEqual(["held"]);
    await produce();
    expect(await eventsOf(copy.id)).toEqual(["deposit.detected"]);
    expect(await apiStatus(copy.id)).toBe("seen");
    // The copy's deposit is the held one: its credit comes back only when the copy confirms.
    expect(await apiTruth(copy.id)).toEqual({ status: "seen", creditState: "held" });
    const listed = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: "/v1/deposits?status=credited&customer_id=alice",
    });
    expect(listed.json().deposits).toEqual([]);

    // Confirmed: the hold is voided, and now the copy is credited.
    await s.mine(2);
    expect(await s.settle()).toMatchObject({ credited: 0, restored: 1 });
    await produce();
    expect(await eventsOf(copy.id)).toEqual([
      "deposit.confirmed",
      "deposit.credited",
      "deposit.detected",
    ]);
    expect(await apiStatus(copy.id)).toBe("credited");
    expect(await apiStatus(old!.id)).toBe("orphaned");
    expect(await apiTruth(copy.id)).toEqual({ status: "credited", creditState: "credited" });
    // The orphaned fact's credit stands again, carried by the copy.
    expect(await apiTruth(old!.id)).toEqual({ status: "orphaned", creditState: "restored" });
    // The hold's outcome, on the held deposit: it came back (the same credit, carried by the copy).
    expect((await holdEventsOf(old!.id)).map((e) => e.type)).toEqual([
      "deposit.reorg_held",
      "deposit.reorg_restored",
    ]);
    expect((await holdEventsOf(old!.id))[1]!.data).toMatchObject({
      deposit_id: old!.id,
      customer_id: "alice",
      amount: amount.toString(),
      restored_deposit_id: copy.id,
    });
    // One credit throughout: both deposits' `deposit.credited` and the hold's events name it, so a
    // receiver links the copy's credit to the orphaned deposit's (not new money).
    const credit = await t.ctx.db.pool.query<{ credit_id: string }>(
      "SELECT credit_id::text FROM ledger.deposit_credits WHERE tx_hash = $1",
      [txHash],
    );
    expect(credit.rows).toHaveLength(1);
    const creditId = credit.rows[0]!.credit_id;
    expect({
      orphaned: await creditedIdsOf(old!.id),
      copy: await creditedIdsOf(copy.id),
      holds: (await holdEventsOf(old!.id)).map((e) => e.data.credit_id),
    }).toEqual({ orphaned: [creditId], copy: [creditId], holds: [creditId, creditId] });
  });

  it("a deposit orphaned and then canonical again in its own block is announced again after deposit.orphaned", async () => {
    const amount = 12n * E17;
    const { txHash, swept } = await s.creditThenReorg(D_BOB, amount, {
      beforeReorg: async () => {
        await produce();
      },
    });
    expect(swept.held).toBe(1);
    await produce();
    const [fact] = await factsOf(txHash);
    expect(await eventsOf(fact!.id)).toEqual([
      "deposit.confirmed",
      "deposit.credited",
      "deposit.detected",
      "deposit.orphaned",
      "deposit.reorg_held",
    ]);

    // The chain goes back to the first branch (a reorg back): as the indexer stores it, the
    // deposit's block is canonical again and its fact row comes back to life, confirmed.
    const old = await reviveInItsBlock(fact!.id, txHash, D_BOB, amount);
    expect(await factsOf(txHash)).toEqual([{ id: fact!.id, status: "confirmed" }]);
    expect(await s.crediting.sweep({ chainId: REORG_CHAIN_ID })).toMatchObject({ restored: 1 });
    expect(await apiStatus(fact!.id)).toBe("credited");

    // The backend applied deposit.orphaned last: it must hear that the deposit is credited again.
    await produce();
    // (Its reorg hold's outcome, `deposit.reorg_restored`, says the same: checked below.)
    const { rows: last } = await t.ctx.db.pool.query<{ type: string }>(
      `SELECT type FROM api.webhook_events WHERE payload->>'deposit_id' = $1
          AND type NOT LIKE 'deposit.reorg_%'
        ORDER BY created_at DESC, type DESC LIMIT 1`,
      [fact!.id],
    );
    expect(last[0]?.type).toBe("deposit.credited");
    expect(await eventsOf(fact!.id)).toEqual([
      "deposit.confirmed",
      "deposit.confirmed",
      "deposit.credited",
      "deposit.credited",
      "deposit.detected",
      "deposit.detected",
      "deposit.orphaned",
      "deposit.reorg_held",
      "deposit.reorg_restored",
    ]);
    expect((await holdEventsOf(fact!.id))[1]!.data).toMatchObject({
      restored_deposit_id: fact!.id,
    });

    // And out again: the second orphaning is sent too.
    await withTransaction(t.ctx.db.pool, (client) =>
      orphanAbove(client, REORG_CHAIN_ID, BigInt(old.block_number) - 1n),
    );
    await produce();
    expect((await eventsOf(fact!.id)).filter((e) => e === "deposit.orphaned")).toHaveLength(2);
    await produce();
    expect(await eventsOf(fact!.id)).toHaveLength(10);
  });

  it("a deposit orphaned again after coming back in its own block is told orphaned before held, in sequence", async () => {
    const amount = 11n * E17;
    const { txHash } = await s.creditThenReorg(D_ERIN, amount, {
      beforeReorg: async () => {
        await produce();
      },
    });
    await produce();
    const [fact] = await factsOf(txHash);
    const old = await reviveInItsBlock(fact!.id, txHash, D_ERIN, amount);
    expect(await s.crediting.sweep({ chainId: REORG_CHAIN_ID })).toMatchObject({ restored: 1 });
    await produce();

    // Out again, and the ledger holds the credit again, just after a pass's deposit-event stage
    // read nothing due: its ledger-event stage (run here alone) comes next, and only the next
    // pass sends the second `deposit.orphaned`.
    await withTransaction(t.ctx.db.pool, async (client) => {
      const ancestor = BigInt(old.block_number) - 1n;
      await orphanAbove(client, REORG_CHAIN_ID, ancestor);
      // As the indexer records it (the ledger's hold pass reads the reorg log).
      await recordReorg(client, {
        chainId: REORG_CHAIN_ID,
        depth: 1,
        ancestor,
        oldTip: { number: BigInt(old.block_number), hash: old.block_hash as Hex },
        newTip: { number: ancestor, hash: old.parent_hash as Hex },
        beyondWindow: false,
        orphanedConfirmedFacts: 1,
      });
    });
    expect(await s.crediting.sweep({ chainId: REORG_CHAIN_ID })).toMatchObject({ held: 1 });
    await produceLedgerEvents({ common: t.ctx.common, pool: t.ctx.db.pool });
    await produce();
    await produce();

    // The deposit's events as the receiver orders them: the second hold after the second orphaning.
    const { rows } = await t.ctx.db.pool.query<{ type: string }>(
      "SELECT type FROM api.webhook_events WHERE subject = $1 ORDER BY sequence",
      [`deposit:${fact!.id}`],
    );
    expect(rows.map((r) => r.type)).toEqual([
      "deposit.detected",
      "deposit.confirmed",
      "deposit.credited",
      "deposit.orphaned",
      "deposit.reorg_held",
      "deposit.detected",
      "deposit.confirmed",
      "deposit.credited",
      "deposit.reorg_restored",
      "deposit.orphaned",
      "deposit.reorg_held",
    ]);
  });

  it("a held deposit whose block is final without it is announced reversed, once", async () => {
    const amount = 9n * E17;
    const { txHash } = await s.creditThenReorg(D_CAROL, amount, {
      beforeReorg: async () => {
        await produce();
      },
    });
    const stateOf = async () =>
      (
        await t.ctx.db.pool.query<{ state: string }>(
          "SELECT state FROM ledger.deposit_credits WHERE tx_hash = $1",
          [txHash],
        )
      ).rows.map((r) => r.state);
    expect(await stateOf()).toEqual(["held"]);
    await produce();
    const [fact] = await factsOf(txHash);
    expect((await holdEventsOf(fact!.id)).map((e) => e.type)).toEqual(["deposit.reorg_held"]);
    expect(await apiTruth(fact!.id)).toEqual({ status: "orphaned", creditState: "held" });

    // Past finality with the deposit nowhere on the chain: the hold is posted, the money gone.
    await s.mine(41);
    await s.settle();
    expect(await stateOf()).toEqual(["final"]);
    expect(await apiTruth(fact!.id)).toEqual({ status: "orphaned", creditState: "reversed" });
    await produce();
    await produce();
    const events = await holdEventsOf(fact!.id);
    expect(events.map((e) => e.type)).toEqual(["deposit.reorg_held", "deposit.reorg_reversed"]);
    expect(events[1]!.data).toMatchObject({
      deposit_id: fact!.id,
      customer_id: "carol",
      chain_id: REORG_CHAIN_ID,
      amount: amount.toString(),
      hold_amount: amount.toString(),
      shortfall_amount: "0",
    });
    // Each is delivered to the configured endpoint, ordered with the deposit's other events.
    const { rows } = await t.ctx.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM api.webhook_deliveries d JOIN api.webhook_events e ON e.id = d.event_id
        WHERE e.payload->>'deposit_id' = $1 AND e.type LIKE 'deposit.reorg_%'`,
      [fact!.id],
    );
    expect(rows[0]!.n).toBe(2);
  });

  it("a deposit a reorg removed before it was credited is told apart from a held or reversed one", async () => {
    const snapshot = await s.rpc<Hex>("evm_snapshot");
    const r = await sendAndMine(s.rpc, { from: s.sender, to: D_DAVE, value: 7n * E17 });
    // One confirmation of three: seen, not credited.
    expect(await s.settle()).toMatchObject({ credited: 0 });
    const tip = BigInt(await s.rpc<Hex>("eth_blockNumber"));
    await s.rpc("evm_revert", [snapshot]);
    while (BigInt(await s.rpc<Hex>("eth_blockNumber")) <= tip + 1n) await s.mine(1);
    expect(await s.settle()).toMatchObject({ credited: 0, held: 0 });
    const [fact] = await factsOf(r.transactionHash.toLowerCase() as Hex);
    expect(await apiTruth(fact!.id)).toEqual({ status: "orphaned", creditState: "none" });
    const listed = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: "/v1/deposits?customer_id=dave",
    });
    expect(listed.json().deposits).toMatchObject([{ id: fact!.id, creditState: "none" }]);
  });
});

describe("GET /v1/deposits?credit_state=", () => {
  type Listed = { id: string; status: string; creditState: string };
  const list = async (query: string) => {
    const res = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: `/v1/deposits?limit=1000${query}`,
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().deposits as Listed[];
  };

  it("lists exactly the deposits whose credit stands where asked, with the other filters", async () => {
    // The deposits the tests above left: credited, restored, reversed and never credited ones.
    const all = await list("");
    const idsIn = (state: string) => all.filter((d) => d.creditState === state).map((d) => d.id);
    for (const state of ["credited", "restored", "reversed", "none"])
      expect(idsIn(state), state).not.toHaveLength(0);
    for (const state of ["none", "credited", "held", "reversed", "restored"])
      expect(
        (await list(`&credit_state=${state}`)).map((d) => d.id),
        state,
      ).toEqual(idsIn(state));
    // With status: the orphaned copy of a deposit credited again elsewhere, not the copy itself.
    const restored = await list("&status=orphaned&credit_state=restored");
    expect(restored.map((d) => d.id)).toEqual(idsIn("restored"));
    expect(await list("&status=credited&credit_state=restored")).toEqual([]);
  });

  it("refuses an unknown credit state with a problem naming the field", async () => {
    const res = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: "/v1/deposits?credit_state=lost",
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json().errors[0].field).toBe("querystring.credit_state");
    // Refused for its value, not as a parameter the route does not know.
    expect(res.json().detail).not.toContain("additional properties");
  });
});
