/**
 * A transaction our signer sent belongs to its request's flow (withdrawal, sweep, cold move), which
 * books its value and gas once the chain's rule is met. Mined but not yet posted, nothing in the
 * ledger claimed it, so `treasury gas` / `defund` on its hash booked it; the flow's post then booked
 * it again (custody:hot counted twice, recon: double_credit). It is refused, naming the request,
 * whether or not the indexer has its facts, and nothing is written. Real anvil, KMS emulator and
 * signer: the request is mined by the wallet signer, not written by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RECIPIENT, waitFor } from "../signer/testing/harness.js";
import { type SignerTest, startSignerTest } from "../signer/testing/signerTest.js";
import { startTreasuryTest, type TreasuryTest, ZERO } from "./testing/treasury.js";
import { bookTreasuryMove, type TreasuryMoveArgs } from "./treasury.js";

let s: SignerTest;
let t: TreasuryTest;
let hot: string;

beforeAll(async () => {
  s = await startSignerTest();
  hot = s.account.address.toLowerCase();
  t = await startTreasuryTest(s.ctx, hot);
  s.signer = s.run();
});
afterAll(async () => {
  await t?.close();
  await s?.stop();
});

describe("a treasury booking of a transaction our signer sent", () => {
  it("is refused while its withdrawal is mined and not yet posted, facts indexed or not", async () => {
    await s.withdraw([{ id: "withdrawal:w-own", value: 500n }]);
    const mined = await waitFor("the withdrawal mined", async () => {
      const r = await s.ctx.db.pool.query<{ tx_hash: string; fee: bigint }>(
        `SELECT tx_hash, fee FROM custody.tx_requests
          WHERE id = 'withdrawal:w-own' AND status IN ('mined', 'confirmed') AND fee IS NOT NULL`,
      );
      return r.rows[0];
    });
    const chainId = s.chain.chainId;
    const book = (args: Omit<TreasuryMoveArgs, "chainId" | "wallet" | "by" | "reason">) =>
      bookTreasuryMove(t.deps, {
        chainId,
        wallet: hot,
        by: "ops",
        reason: "gas of the withdrawal tx, by mistake",
        ...args,
      });
    const refused = {
      code: "TREASURY_MOVE_REFUSED",
      message: expect.stringMatching(
        /sent by the custody.s signer for tx request withdrawal:w-own \(withdrawal /,
      ),
    };
    const before = await t.written();
    expect(before.transfers).toBe(0);

    // Not indexed yet: the amounts given.
    await expect(
      book({ move: "gas", txHash: mined.tx_hash, amount: mined.fee }),
    ).rejects.toMatchObject(refused);
    await expect(
      book({ move: "defund", txHash: mined.tx_hash, amount: 500n, fee: mined.fee }),
    ).rejects.toMatchObject(refused);
    expect(await t.written()).toEqual(before);

    // Indexed: its value and gas facts, as the indexer stores them.
    await t.fact({
      tx: mined.tx_hash,
      position: "tx",
      kind: "native",
      from: hot,
      to: RECIPIENT,
      amount: 500n,
    });
    await t.fact({
      tx: mined.tx_hash,
      position: "fee",
      kind: "fee",
      from: hot,
      to: ZERO,
      amount: mined.fee,
    });
    await expect(book({ move: "gas", txHash: mined.tx_hash })).rejects.toMatchObject(refused);
    await expect(book({ move: "defund", txHash: mined.tx_hash })).rejects.toMatchObject(refused);
    expect(await t.written()).toEqual(before);
  });
});
