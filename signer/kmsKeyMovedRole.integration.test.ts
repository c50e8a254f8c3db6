/**
 * The signer role (signer/role.ts) with a hot wallet whose KMS alias was moved to another key: the
 * other key's address is refused (SIGNER_KMS_KEY_MOVED, signer/hotWalletKeys.ts) before the role
 * registers it as a hot wallet of the chain. Registered first, the address that holds none of the
 * wallet's funds was watched as custody's own and counted by reconciliation as a hot wallet, for
 * good, though no signer ever served it.
 */
import { CreateAliasCommand, CreateKeyCommand, UpdateAliasCommand } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../foundation/config.js";
import { migrate } from "../ops/migrate.js";
import { type Service, startService } from "../ops/start.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { waitFor } from "../ops/testing/wait.js";
import { type KmsEmulator, startKmsEmulator } from "./kms-emulator/server.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";

let ctx: TestContext;
let emulator: KmsEmulator;
let service: Service | undefined;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  await migrate(ctx.config.env.DATABASE_URL);
  emulator = await startKmsEmulator({});
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await emulator?.stop();
  await ctx?.cleanup();
});

describe("a hot wallet alias moved to another key before the signer role starts", () => {
  it("is refused before its address is registered as a hot wallet of the chain", async () => {
    const kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
    const newKey = async () =>
      (
        await kms.send(
          new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
        )
      ).KeyMetadata!.KeyId!;
    const alias = "alias/hot-role-moved";
    const walletKey = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: walletKey }));
    const wallet = (await createKmsAccount({ kms, keyId: walletKey })).address.toLowerCase();
    // A signer loaded the wallet under this alias once: pinned (signer/hotWalletKeys.ts).
    await ctx.db.pool.query(
      "INSERT INTO custody.hot_wallet_keys (chain_id, key_id, address) VALUES (31337, $1, $2)",
      [alias, wallet],
    );
    const otherKey = await newKey();
    await kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: otherKey }));
    const other = (await createKmsAccount({ kms, keyId: otherKey })).address.toLowerCase();
    kms.destroy();

    const chain = ctx.config.chains[0]!;
    const config = {
      ...ctx.config,
      hotWallets: [{ chain: chain.key, kmsKeyId: alias }],
      env: { ...ctx.config.env, AWS_ENDPOINT_URL_KMS: emulator.url, AWS_REGION: "us-east-1" },
    } as Config;
    service = await startService(config, { roles: ["signer"] });
    const refusals = async () => {
      const m = await service!.common.metrics.registry
        .getSingleMetric("custody_kms_key_refusals_total")
        ?.get();
      return m?.values.find((v) => v.labels.key === alias && v.labels.reason === "other_key")
        ?.value;
    };
    await waitFor("the moved key refused", async () => ((await refusals()) ?? 0) >= 1, {
      timeoutMs: 30_000,
    });
    // old code: expected [ { kind: 'hot', … } ] to deeply equal []: the refused key's address
    // was a watched hot wallet of the chain.
    const { rows } = await ctx.db.pool.query(
      "SELECT kind, owner FROM chain.custody_addresses WHERE chain_id = 31337 AND address = $1",
      [other],
    );
    expect(rows).toEqual([]);
  }, 90_000);
});
