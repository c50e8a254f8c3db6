/**
 * For tests of the withdrawal side of signer outcomes: a withdrawal api test context with a
 * requester key (owner exchange-backend, withdrawals:write), and the moves such tests make: create
 * a withdrawal, move its signer request row as the tracker records it, read it back through the
 * API. Test-only.
 */
import { expect } from "vitest";
import { setTxRequestState, type TxRequestState } from "../../signer/testing/txRequestState.js";
import { createWithdrawalApiTestContext, type WithdrawalApiTestContext } from "./apiTestContext.js";

export type WithdrawalOutcomeTest = WithdrawalApiTestContext & {
  /** The exchange backend's key (withdrawals:write). */
  requester: string;
  /** A native withdrawal of `amount` by `customer` with `requester`; it must be `signing`. Its id. */
  withdraw: (customer: string, amount: bigint) => Promise<string>;
  /** Moves the withdrawal's signer request row as its tracker would record it. */
  signerRecords: (withdrawalId: string, state: TxRequestState) => Promise<void>;
  /** GET /v1/withdrawals/:id (it must answer 200): the body. */
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, read field by field by the tests
  withdrawal: (id: string) => Promise<any>;
  /** The customer's native (chain 31337) ledger balance. */
  balance: (customer: string) => ReturnType<WithdrawalApiTestContext["ledger"]["balance"]>;
  /** What the customer can spend of it: posted credits less posted and pending debits. */
  available: (customer: string) => Promise<bigint>;
  /** Gas booked to fees:gas (native), net. */
  gasBooked: () => Promise<bigint>;
  /** The webhook event types told for a withdrawal, in order. */
  eventTypes: (withdrawalId: string) => Promise<string[]>;
};

const NATIVE = "31337:0x0000000000000000000000000000000000000000";

export async function createWithdrawalOutcomeTest(
  options: Parameters<typeof createWithdrawalApiTestContext>[0],
): Promise<WithdrawalOutcomeTest> {
  const t = await createWithdrawalApiTestContext(options);
  let requester: string;
  try {
    requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
  } catch (error) {
    await t.cleanup();
    throw error;
  }
  return {
    ...t,
    requester,
    async withdraw(customer, amount) {
      const created = await t.withdrawNative(requester, customer, amount);
      expect(created.status).toBe("signing");
      return created.id;
    },
    signerRecords: (withdrawalId, state) =>
      setTxRequestState(t.ctx.db.pool, `withdrawal:${withdrawalId}`, state),
    async withdrawal(id) {
      const res = await t.call(t.keys["withdrawals:write"], {
        method: "GET",
        url: `/v1/withdrawals/${id}`,
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    },
    balance: (customer) => t.ledger.balance({ assetId: NATIVE, name: `user:${customer}` }),
    async available(customer) {
      const b = await t.ledger.balance({ assetId: NATIVE, name: `user:${customer}` });
      return b.creditsPosted - b.debitsPosted - b.debitsPending;
    },
    async gasBooked() {
      const g = await t.ledger.balance({ assetId: NATIVE, name: "fees:gas" });
      return g.debitsPosted - g.creditsPosted;
    },
    async eventTypes(withdrawalId) {
      const { rows } = await t.ctx.db.pool.query<{ type: string }>(
        "SELECT type FROM api.webhook_events WHERE payload->>'withdrawal_id' = $1 ORDER BY created_at",
        [withdrawalId],
      );
      return rows.map((r) => r.type);
    },
  };
}
