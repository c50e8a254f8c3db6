/**
 * Two listed tokens of one chain with the same symbol (bridged and native USDC both answer
 * `symbol() = "USDC"` on some chains): a withdrawal naming the asset by that symbol cannot tell which
 * one the customer means, so it is refused (422 ASSET_AMBIGUOUS naming both addresses) and nothing is
 * held or sent; by address each one is withdrawn. Real Postgres, ledger and signer intake.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { transferId } from "../../ledger/index.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";

const BRIDGED = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const NATIVE_USDC = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const limits = { perTransaction: "1000000", rolling24h: "1000000", approvalThreshold: "1000000" };

let t: WithdrawalApiTestContext;
let requester: string;
let n = 0;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    chain: {
      chainId: 31337,
      key: "local-a",
      config: {
        tokens: [
          { address: BRIDGED, symbol: "USDC", decimals: 6 },
          { address: NATIVE_USDC, symbol: "USDC", decimals: 6 },
        ],
      },
    },
    file: {
      policies: {
        withdrawals: {
          limits: {
            [`31337:${BRIDGED.toLowerCase()}`]: limits,
            [`31337:${NATIVE_USDC.toLowerCase()}`]: limits,
          },
        },
      },
    },
    fund: { customers: [], amount: 0n },
  });
  for (const token of [BRIDGED, NATIVE_USDC])
    await t.ledger.transfer({
      id: transferId(`test:fund:alice:${token}`),
      assetId: `31337:${token.toLowerCase()}`,
      debit: "custody:deposits",
      credit: "user:alice",
      amount: 500_000n,
      kind: "manual",
    });
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
});
afterAll(async () => {
  await t?.cleanup();
});

const withdraw = (asset: string) =>
  t.call(requester, {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": `amb-${++n}` },
    payload: { customerId: "alice", chain: "local-a", asset, to: DEST, amount: "100000" },
  });
const held = async (token: string) =>
  (await t.ledger.balance({ assetId: `31337:${token.toLowerCase()}`, name: "user:alice" }))
    .debitsPending;

describe("an asset symbol two listed tokens share", () => {
  it("is refused naming both tokens, holding nothing; each is withdrawn by its address", async () => {
    const res = await withdraw("USDC");
    expect(
      {
        status: res.statusCode,
        bridgedHeld: await held(BRIDGED),
        nativeHeld: await held(NATIVE_USDC),
      },
      "a withdrawal by an ambiguous symbol picked one of the tokens",
    ).toEqual({ status: 422, bridgedHeld: 0n, nativeHeld: 0n });
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({ code: "ASSET_AMBIGUOUS", field: "body.asset" });
    expect(res.json().detail ?? res.json().title).toContain(NATIVE_USDC);
    const rows = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.withdrawals");
    expect(rows.rows[0].n).toBe(0);

    const byAddress = await withdraw(NATIVE_USDC);
    expect(byAddress.statusCode).toBe(201);
    expect(byAddress.json().assetId).toBe(`31337:${NATIVE_USDC.toLowerCase()}`);
    expect(await held(NATIVE_USDC)).toBe(100_000n);
    expect(await held(BRIDGED)).toBe(0n);
  });
});
