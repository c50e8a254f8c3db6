/**
 * eth_feeHistory failing while an attempt is due for a bump. Fees are needed only to sign a
 * replacement: the due attempt's stored bytes must still go out unchanged (as at the cap), and the
 * tick must go on to its doorbells and metrics. When the bump stage let the failure end the tick,
 * every tick ended there and the session restarted every second (lease released, balance and
 * lease-held series removed), and an outcome the tracker recorded was never rung.
 */
import { type Hex, keccak256, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { moreCalls, type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { bumpIntervalMs: 300, confirmations: { kind: "blocks", blocks: 2 } } },
    proxy: startRpcProxy,
  });
});

afterAll(async () => {
  await t?.stop();
});

async function owed(id: string): Promise<{ outcome: number; notified: number }> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT outcome_seq AS outcome, COALESCE(notified_seq, 0) AS notified FROM custody.tx_requests WHERE id = $1",
    [id],
  );
  return { outcome: Number(rows[0].outcome), notified: Number(rows[0].notified) };
}

describe("eth_feeHistory failing while a bump is due", () => {
  it("resends the due attempt unchanged and still rings the outcomes the tracker recorded", async () => {
    const account = await t.wallet(parseEther("10"));
    const signer = t.run(account);
    let swallowed = 0;
    try {
      await t.withdraw(["bf-first"], { from: account.address });
      await waitFor(
        "the first withdrawal mined",
        async () => (await getTxRequest(t.ctx.db.pool, "bf-first"))?.status === "mined",
        { timeoutMs: 10_000 },
      );
      // The node answers sends but never pools them: the second withdrawal stays unmined.
      t.proxy!.setIntercept((call) => {
        if (call.method !== "eth_sendRawTransaction") return undefined;
        swallowed++;
        return { result: keccak256((call.params as Hex[])[0]!) };
      });
      await t.withdraw(["bf-stuck"], { from: account.address });
      await waitFor(
        "the second withdrawal broadcast",
        async () => (await getTxRequest(t.ctx.db.pool, "bf-stuck"))?.status === "broadcast",
        { timeoutMs: 10_000 },
      );
      t.proxy!.setIntercept((call) => {
        if (call.method === "eth_feeHistory")
          return { error: { code: -32603, message: "feeHistory: backend unavailable" } };
        if (call.method !== "eth_sendRawTransaction") return undefined;
        swallowed++;
        return { result: keccak256((call.params as Hex[])[0]!) };
      });
      const before = swallowed;
      // Past the bump interval: the stuck attempt is due before the first one confirms.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await waitFor(
        "the first withdrawal confirmed and its outcome rung while fees cannot be read",
        async () => {
          await t.rpc("evm_mine");
          const o = await owed("bf-first");
          return (
            (await getTxRequest(t.ctx.db.pool, "bf-first"))?.status === "confirmed" &&
            o.notified >= o.outcome
          );
        },
        { timeoutMs: 8_000 },
      );
      // The due attempt went out again as stored (no new bytes without fees), and the session
      // did not restart over it.
      expect(swallowed).toBeGreaterThan(before);
      expect(signer.isActive()).toBe(true);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'bf-stuck'",
      );
      expect(rows[0].n).toBe(1);
      t.proxy!.setIntercept(undefined);
      await waitFor(
        "the stuck withdrawal confirmed once the node pools it",
        async () => {
          const s = (await getTxRequest(t.ctx.db.pool, "bf-stuck"))?.status;
          await t.rpc("evm_mine");
          return s === "confirmed";
        },
        { timeoutMs: 15_000 },
      );
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });

  it("records the unchanged resend a node takes: the request is out, its attempt no longer underpriced", async () => {
    const account = await t.wallet(parseEther("10"));
    // Nothing mines: what the node takes stays pooled, so only the signer's record can say so.
    await t.rpc("evm_setAutomine", [false]);
    // The stall stage's resend (which records the node's answer) kept out of the bump's way.
    const signer = t.run(account, { settings: { stallResendMs: 600_000 } });
    const attempts = async () => {
      const { rows } = await t.ctx.db.pool.query<{ status: string; err: string | null }>(
        "SELECT status, last_error_class AS err FROM custody.tx_attempts WHERE request_id = 'bf-refused' ORDER BY id",
      );
      return rows;
    };
    let feesDown = false;
    try {
      // Every send refused for its fees: the node takes nothing, the request stays `signed`.
      t.proxy!.setIntercept((call) => {
        if (feesDown && call.method === "eth_feeHistory")
          return { error: { code: -32603, message: "feeHistory: backend unavailable" } };
        if (call.method !== "eth_sendRawTransaction") return undefined;
        return { error: { code: -32000, message: "transaction underpriced" } };
      });
      await t.withdraw(["bf-refused"], { from: account.address });
      await waitFor("a send refused as underpriced", async () =>
        (await attempts()).some((a) => a.err === "underpriced"),
      );
      // Fees cannot be read: the refused attempt is resent unchanged each pass, and taken.
      feesDown = true;
      await moreCalls(t.proxy!, "eth_feeHistory", 2);
      const signed = (await attempts()).length;
      t.proxy!.setIntercept((call) =>
        call.method === "eth_feeHistory"
          ? { error: { code: -32603, message: "feeHistory: backend unavailable" } }
          : undefined,
      );
      await waitFor(
        "the node holds it",
        async () =>
          (await t.client.getTransactionCount({
            address: account.address,
            blockTag: "pending",
          })) === 1,
      );
      await waitFor(
        "the request recorded as out",
        async () => (await getTxRequest(t.ctx.db.pool, "bf-refused"))?.status === "broadcast",
        { timeoutMs: 5_000 },
      );
      const list = await attempts();
      expect(list).toHaveLength(signed);
      expect(list.at(-1)).toEqual({ status: "broadcast", err: null });
      t.proxy!.setIntercept(undefined);
      await t.rpc("evm_setAutomine", [true]);
      await waitFor(
        "confirmed",
        async () => {
          await t.rpc("evm_mine");
          return (await getTxRequest(t.ctx.db.pool, "bf-refused"))?.status === "confirmed";
        },
        { timeoutMs: 15_000 },
      );
    } finally {
      t.proxy!.setIntercept(undefined);
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
    }
  });
});
