/**
 * Gas from the chain on real anvil, Postgres, Redis and the KMS emulator: a native withdrawal to
 * a destination whose receive() writes storage (intrinsic + execution gas well above 21,000) is
 * estimated and mines; an OP-stack chain's L1 data fee is read from the GasPriceOracle predeploy.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { estimateTxGas, OP_GAS_PRICE_ORACLE } from "./gas.js";
import { getTxRequest } from "./requests.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

/** receive(): slot0 += 1 (SLOAD, ADD, SSTORE): ~43k gas on a fresh slot, never 21,000. */
const COUNTER_RUNTIME: Hex = "0x6000546001016000550000";
const COUNTER: Hex = "0x00000000000000000000000000000000c0ffee01";
/** A GasPriceOracle stand-in: getL1Fee(bytes) returns calldata size x 1000 wei. */
const L1_FEE_PER_CALLDATA_BYTE = 1000n;
const ORACLE_RUNTIME: Hex = "0x366103e80260005260206000f3";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
  });
  await t.rpc("anvil_setCode", [COUNTER, COUNTER_RUNTIME]);
  await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, ORACLE_RUNTIME]);
  t.signer = t.run();
});

afterAll(async () => {
  await t?.stop();
});

const slot0 = async () => BigInt((await t.client.getStorageAt({ address: COUNTER, slot: "0x0" }))!);

async function withdraw(
  id: string,
  to: Hex,
  value: bigint,
  extra: { gasLimit?: bigint; data?: Hex } = {},
) {
  await t.withdraw(id, { to, value, ...extra });
}

async function confirmed(id: string) {
  return waitFor(
    `${id} confirmed`,
    async () => {
      await t.rpc("anvil_mine", ["0x1"]);
      const r = await getTxRequest(t.ctx.db.pool, id);
      if (r?.status === "failed") throw new Error(`${id} failed: ${r.errorCode} ${r.errorMessage}`);
      return r?.status === "confirmed" ? r : undefined;
    },
    { timeoutMs: 60_000, everyMs: 200 },
  );
}

describe("gas from the chain", () => {
  it("estimates a contract destination above 21,000 with the chain's margin", async () => {
    const chain = t.ctx.config.chains[0]!;
    const gas = await estimateTxGas(t.client, chain, {
      from: t.account.address,
      to: COUNTER,
      value: 1n,
      data: "0x",
    });
    expect(gas.estimated! > 40_000n).toBe(true);
    expect(gas.gasLimit).toBe((gas.estimated! * 12_000n + 9_999n) / 10_000n);
    expect(gas.l1Fee).toBe(0n);
  });

  it("a native withdrawal to a destination whose receive() writes storage is estimated and mines", async () => {
    const before = await slot0();
    const balanceBefore = await t.client.getBalance({ address: COUNTER });
    await withdraw("gas-contract-1", COUNTER, 12_345n);
    const r = await confirmed("gas-contract-1");
    expect(r.receiptSuccess).toBe(true);
    expect(r.gasUsed! > 21_000n).toBe(true);
    expect(await slot0()).toBe(before + 1n);
    expect(await t.client.getBalance({ address: COUNTER })).toBe(balanceBefore + 12_345n);
    const { rows } = await t.ctx.db.pool.query<{ gas_limit: bigint }>(
      "SELECT gas_limit FROM custody.tx_attempts WHERE request_id = $1",
      ["gas-contract-1"],
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.gas_limit >= r.gasUsed!).toBe(true);
  });

  it("a plain transfer still mines (its limit comes from the estimate, not a constant)", async () => {
    await withdraw("gas-plain-1", RECIPIENT, 1n);
    const r = await confirmed("gas-plain-1");
    expect(r.receiptSuccess).toBe(true);
    expect(r.gasUsed).toBe(21_000n);
  });

  it("refuses a request whose gas limit is below its intrinsic gas before a nonce: never signed or broadcast", async () => {
    const nonceBefore = await t.client.getTransactionCount({ address: t.account.address });
    // 21,000 covers no calldata: 2 non-zero bytes make the intrinsic gas 21,032.
    await withdraw("gas-intrinsic-1", RECIPIENT, 1n, { gasLimit: 21_000n, data: "0xffff" });
    const r = await waitFor(
      "refused",
      async () => {
        const row = await getTxRequest(t.ctx.db.pool, "gas-intrinsic-1");
        return row?.status === "failed" ? row : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(r.errorCode).toBe("SIGNER_INTRINSIC_GAS_TOO_LOW");
    expect(r.errorMessage).toContain("21032");
    expect(r.nonce).toBeNull();
    expect(r.txHash).toBeNull();
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = $1",
      ["gas-intrinsic-1"],
    );
    expect(rows[0].n).toBe(0);
    // The nonce was not taken: the next request uses it and mines.
    await withdraw("gas-after-intrinsic", RECIPIENT, 2n);
    const next = await confirmed("gas-after-intrinsic");
    expect(next.nonce).toBe(BigInt(nonceBefore));
  });

  it("reads an OP-stack L1 data fee from the GasPriceOracle predeploy, growing with the calldata", async () => {
    const policy = { ...t.ctx.config.chains[0]!, l1DataFee: "op-stack" as const };
    const plain = await estimateTxGas(t.client, policy, {
      from: t.account.address,
      to: RECIPIENT,
      value: 1n,
      data: "0x",
    });
    const withData = await estimateTxGas(t.client, policy, {
      from: t.account.address,
      to: RECIPIENT,
      value: 1n,
      data: `0x${"ab".repeat(1000)}`,
    });
    expect(plain.l1Fee > 0n).toBe(true);
    expect(plain.l1Fee % L1_FEE_PER_CALLDATA_BYTE).toBe(0n);
    // The serialized tx is 1000 bytes longer (the ABI pads both to 32 bytes).
    expect(withData.l1Fee - plain.l1Fee >= (1000n - 32n) * L1_FEE_PER_CALLDATA_BYTE).toBe(true);
  });
});
