/**
 * A withdrawal to one of the custody's own addresses is refused on whichever configured chain that
 * address is the custody's: a hot wallet's KMS key signs on every chain, and a customer who copies
 * an address of the custody from another network (its hot wallet, its cold address, a deposit
 * address, or one of its contracts, such as the reserves attestor dApps show) would otherwise pay
 * the custody, unseen there, with their own money. Two anvil chains,
 * real Postgres, ledger and signer intake.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordContract } from "../../indexers/index.js";
import { RESERVES_ATTESTOR } from "../../ledger/attest/deploy.js";
import { createLedger, type Ledger, transferId } from "../../ledger/index.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { deployTestFactory } from "../testing/factory.js";

const ETH = 10n ** 18n;
const NATIVE_A = "31337:0x0000000000000000000000000000000000000000";
/** anvil's dev accounts 3 and 4: chain B's own hot wallet and cold address, nothing of chain A. */
const HOT_B = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const COLD_B = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65";
/** A deposit address recorded on chain B only (its factory there has another address). */
const DEPOSIT_B = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/** anvil's dev account 0: chain A's hot wallet (it deploys chain A's factory). */
const HOT_A = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/** The reserves attestors recorded on chain A and on chain B (nothing of the other chain). */
const ATTESTOR_A = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
const ATTESTOR_B = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0";

let t: ApiTestContext;
let ledger: Ledger;
let requester: string;
let n = 0;

beforeAll(async () => {
  t = await createApiTestContext({
    chains: [
      { chainId: 31337, key: "local-a" },
      { chainId: 31338, key: "local-b", config: { coldAddress: COLD_B } },
    ],
  });
  await deployTestFactory(t.ctx, 0);
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig(t.ctx.config.chains);
  await ledger.transfer({
    id: transferId("test:fund:alice"),
    assetId: NATIVE_A,
    debit: "custody:deposits",
    credit: "user:alice",
    amount: 10n * ETH,
    kind: "manual",
  });
  await t.ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     VALUES (31338, $1, 'hot', 'custody'), (31338, $2, 'deposit', 'bob')`,
    [HOT_B.toLowerCase(), DEPOSIT_B.toLowerCase()],
  );
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
}, 120_000);
afterAll(async () => {
  await ledger?.close();
  await t?.cleanup();
});

const withdraw = (to: string) =>
  t.call(requester, {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": `dest-${++n}` },
    payload: { customerId: "alice", chain: "local-a", asset: "native", to, amount: ETH.toString() },
  });

describe("a destination that is the custody's on another chain", () => {
  it("is refused with 422 DESTINATION_IS_CUSTODY, holding and sending nothing; an external one goes through", async () => {
    for (const to of [HOT_B, COLD_B, DEPOSIT_B]) {
      const res = await withdraw(to);
      expect(res.statusCode, `${to}: ${res.body}`).toBe(422);
      expect(res.json()).toMatchObject({ code: "DESTINATION_IS_CUSTODY", field: "body.to" });
    }
    const held = await ledger.balance({ assetId: NATIVE_A, name: "user:alice" });
    expect(held.debitsPending).toBe(0n);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM api.withdrawals UNION ALL SELECT count(*)::int FROM custody.tx_requests",
    );
    expect(rows.map((r) => r.n)).toEqual([0, 0]);
    expect((await withdraw(DEST)).statusCode).toBe(201);
  });

  it("a contract of the custody's (the reserves attestor dApps read, on this chain or another) is refused too: nothing takes value out of it", async () => {
    // As `custody-node por deploy` records them (ledger/attest/deploy.ts), without the deploy.
    for (const [chainId, address, hotWallet] of [
      [31337, ATTESTOR_A, HOT_A],
      [31338, ATTESTOR_B, HOT_B],
    ] as const)
      await recordContract(t.ctx.db.pool, {
        chainId,
        name: RESERVES_ATTESTOR,
        address,
        hotWallet,
        initCodeHash: null,
        deployTxHash: `0x${chainId.toString(16).padStart(64, "0")}`,
        blockNumber: 1n,
      });
    const before = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.withdrawals");
    const held = (await ledger.balance({ assetId: NATIVE_A, name: "user:alice" })).debitsPending;
    for (const to of [ATTESTOR_A, ATTESTOR_B]) {
      const res = await withdraw(to);
      expect(res.statusCode, `${to}: ${res.body}`).toBe(422);
      expect(res.json()).toMatchObject({ code: "DESTINATION_IS_CUSTODY", field: "body.to" });
    }
    const after = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.withdrawals");
    expect(after.rows[0].n).toBe(before.rows[0].n);
    expect((await ledger.balance({ assetId: NATIVE_A, name: "user:alice" })).debitsPending).toBe(
      held,
    );
  });
});
