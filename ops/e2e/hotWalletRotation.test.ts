/**
 * Rotating a chain's hot wallet (docs/deploy.md, "Rotating a hot wallet's key"), through the whole service
 * (every role) and its API on anvil with the KMS emulator holding two keys. The old wallet (the
 * one that deployed the ForwarderFactory) stays in `hotWallets[]` marked `retiring`; the new one
 * follows it with its `address`. Intake took the chain's first registered hot wallet whatever the
 * config said, so every new withdrawal kept going to the wallet the team was retiring (drained:
 * insufficient funds for ever; its key disabled: never signed), and the new wallet was watched by
 * nothing (its funding could not be booked, reconciliation did not count it). Now a new request
 * goes to the first wallet that is not retiring; the retiring one still sends what it was given.
 */

import { randomUUID } from "node:crypto";
import { CreateKeyCommand } from "@aws-sdk/client-kms";
import { type Address, getAddress, type Hex, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../api/apiKeys.js";
import type { Config } from "../../foundation/config.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { bookTreasuryMove, createLedger, type Ledger, transferId } from "../../ledger/index.js";
import { createKmsAccount, createKmsClient } from "../../signer/kmsAccount.js";
import { signerTransactions } from "../../signer/requests.js";
import { fundFromAnvil } from "../devstack/custody.js";
import { type Service, startService } from "../start.js";
import { waitFor } from "../testing/wait.js";
import { type CustodyTest, prepareTestCustody, startCustodyTest } from "./setup.js";

const DEST = getAddress("0x000000000000000000000000000000000000beef");
const NATIVE = "31337:0x0000000000000000000000000000000000000000";

let t: CustodyTest;
let service: Service | undefined;
let ledger: Ledger;
let oldHot: Address;
let newHot: Address;
let newKeyId: string;
let base: Config;
let key: string;

beforeAll(async () => {
  t = await startCustodyTest({
    chainId: 31337,
    key: "local-a",
    config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 8, blockTimeMs: 100 },
  });
  // The old wallet: the dev stack's (deployed the factory, watched, funded 100 ETH).
  const prepared = await prepareTestCustody(t.ctx, t.kms);
  oldHot = getAddress(prepared.hotWallet);
  base = prepared.config;
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig([t.chain]);
  await bookTreasuryMove(
    { common: t.ctx.common, pool: t.ctx.db.pool, ledger, signerTransactions },
    {
      move: "fund",
      chainId: t.chain.chainId,
      txHash: prepared.fundTxHash,
      wallet: oldHot,
      amount: parseEther("100"),
      by: "ops-anna",
      reason: "hot wallet float",
    },
  );
  // The new wallet: a second key in KMS (`custody-node keys create`).
  ({ keyId: newKeyId, address: newHot } = await createKey());
  await ledger.transfer({
    id: transferId("test:fund:alice"),
    assetId: NATIVE,
    debit: "custody:deposits",
    credit: "user:alice",
    amount: parseEther("5"),
    kind: "manual",
  });
  key = (
    await createApiKey(t.ctx.db.pool, {
      owner: "backend",
      scopes: ["withdrawals:write", "ledger:read"],
    })
  ).plaintext;
}, 180_000);

afterAll(async () => {
  await service?.stop();
  await ledger?.close();
  await t?.cleanup();
});

async function createKey(): Promise<{ keyId: string; address: Address }> {
  const kms = createKmsClient({
    region: base.env.AWS_REGION,
    endpoint: t.kms.url,
    emulator: base.env.KMS_EMULATOR,
  });
  try {
    const created = await kms.send(
      new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
    );
    const keyId = created.KeyMetadata!.KeyId!;
    return { keyId, address: getAddress((await createKmsAccount({ kms, keyId })).address) };
  } finally {
    kms.destroy();
  }
}

async function api(method: "GET" | "POST", path: string, body?: object) {
  const res = await fetch(`${service!.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body ? { "content-type": "application/json", "idempotency-key": randomUUID() } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status >= 300)
    throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Below the demo policy's approval threshold (1 ETH): straight to the signer. */
async function withdraw(amount: bigint) {
  return api("POST", "/v1/withdrawals", {
    customerId: "alice",
    chain: t.chain.key,
    asset: "native",
    to: DEST,
    amount: amount.toString(),
  }) as Promise<{ id: string; from: string | null; status: string }>;
}

async function confirmed(id: string) {
  return waitFor(
    `withdrawal ${id} confirmed`,
    async () => {
      await t.mine();
      const w = (await api("GET", `/v1/withdrawals/${id}`)) as { status: string; txHash: Hex };
      return w.status === "confirmed" || w.status === "finalized" ? w : undefined;
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
}

describe("hot wallet rotation", () => {
  it("the retiring wallet sends what it was given; new withdrawals go to the new wallet", async () => {
    // Before the rotation: a withdrawal handed to the old wallet, no signer running yet (in flight).
    service = await startService(base, { roles: ROLE_NAMES.filter((r) => r !== "signer") });
    const before = await withdraw(parseEther("0.5"));
    expect(before.from).toBe(oldHot);
    await service.stop();

    // The rotation: the old wallet retiring, the new one (with its address) taking new requests.
    const rotated: Config = Object.freeze({
      ...base,
      hotWallets: [
        { chain: t.chain.key, kmsKeyId: base.hotWallets[0]!.kmsKeyId, retiring: true },
        { chain: t.chain.key, kmsKeyId: newKeyId, address: newHot },
      ],
    } as Config);
    service = await startService(rotated, { roles: [...ROLE_NAMES] });

    // The new wallet's signer registered it: the indexer watches it, so its funding is a chain
    // fact the treasury booking pairs with (refused for a wallet that is not a hot wallet).
    await waitFor(
      "new hot wallet watched",
      async () =>
        (
          await t.ctx.db.pool.query(
            "SELECT 1 FROM chain.custody_addresses WHERE chain_id = $1 AND address = $2 AND kind = 'hot'",
            [t.chain.chainId, newHot.toLowerCase()],
          )
        ).rowCount === 1 || undefined,
      { timeoutMs: 30_000, everyMs: 100 },
    );
    const funding = await fundFromAnvil(t.client, newHot, parseEther("10"));
    await bookTreasuryMove(
      { common: t.ctx.common, pool: t.ctx.db.pool, ledger, signerTransactions },
      {
        move: "fund",
        chainId: t.chain.chainId,
        txHash: funding,
        wallet: newHot,
        amount: parseEther("10"),
        by: "ops-anna",
        reason: "new hot wallet float",
      },
    );

    const after = await withdraw(parseEther("0.25"));
    expect(after.from).toBe(newHot);

    // Each is paid by the wallet it was recorded with.
    const paidBefore = await confirmed(before.id);
    const paidAfter = await confirmed(after.id);
    const txBefore = await t.client.getTransaction({ hash: paidBefore.txHash });
    const txAfter = await t.client.getTransaction({ hash: paidAfter.txHash });
    expect(getAddress(txBefore.from)).toBe(oldHot);
    expect(getAddress(txAfter.from)).toBe(newHot);
    // The holds sit on the wallet that pays: custody:hot:<new> paid out 0.25 ETH and its gas.
    const newAccount = await ledger.balance({
      assetId: NATIVE,
      name: `custody:hot:${newHot.toLowerCase()}`,
    });
    expect(newAccount.debitsPosted - newAccount.creditsPosted).toBeLessThan(
      parseEther("10") - parseEther("0.25"),
    );
  }, 240_000);

  it("a configured address no key signs for takes no withdrawal (refused, nothing held)", async () => {
    await service?.stop();
    // A typo: the next wallet's key signs for another address than the config gives.
    const next = await createKey();
    const typo = getAddress("0x00000000000000000000000000000000000a11ce");
    const rotated: Config = Object.freeze({
      ...base,
      hotWallets: [
        { chain: t.chain.key, kmsKeyId: base.hotWallets[0]!.kmsKeyId, retiring: true },
        { chain: t.chain.key, kmsKeyId: newKeyId, address: newHot, retiring: true },
        { chain: t.chain.key, kmsKeyId: next.keyId, address: typo },
      ],
    } as Config);
    service = await startService(rotated, { roles: [...ROLE_NAMES] });
    const count = async () =>
      Number(
        (await t.ctx.db.pool.query<{ n: string }>("SELECT count(*) AS n FROM api.withdrawals"))
          .rows[0]!.n,
      );
    const before = await count();
    const res = await fetch(`${service.url}/v1/withdrawals`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        "idempotency-key": randomUUID(),
      },
      body: JSON.stringify({
        customerId: "alice",
        chain: t.chain.key,
        asset: "native",
        to: DEST,
        amount: parseEther("0.1").toString(),
      }),
    });
    expect({ status: res.status, code: ((await res.json()) as { code?: string }).code }).toEqual({
      status: 503,
      code: "NO_HOT_WALLET",
    });
    expect(await count()).toBe(before);
    // The signer refused the key (its address is not the configured one) and registered nothing;
    // readiness says so (the other two wallets' keys loaded).
    await waitFor(
      "the mismatching key refused",
      async () =>
        (await (await fetch(`${service!.url}/readyz`)).text()).includes(
          "1 hot wallet key(s) not loaded",
        ) || undefined,
      { timeoutMs: 30_000, everyMs: 100 },
    );
    const registered = await t.ctx.db.pool.query(
      "SELECT address FROM chain.custody_addresses WHERE chain_id = $1 AND address = ANY($2::text[])",
      [t.chain.chainId, [typo.toLowerCase(), next.address.toLowerCase()]],
    );
    expect(registered.rows).toEqual([]);
  }, 120_000);
});
