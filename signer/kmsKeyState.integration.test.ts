/**
 * The signer role asks KMS the state of every configured hot wallet key on its own period
 * (signer/kmsKeyState.ts), whether or not the key signs: a key scheduled for deletion or disabled
 * while its wallet is idle is seen while the deletion can still be cancelled; a DescribeKey that
 * gets no answer is `unknown` (the deletion date seen last stays), never `enabled`; an alias moved
 * to another key is `other_key`.
 */
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  EnableKeyCommand,
  type KMSClient,
  ScheduleKeyDeletionCommand,
  UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../foundation/config.js";
import { migrate } from "../ops/migrate.js";
import { type Service, startService } from "../ops/start.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { waitFor } from "../ops/testing/wait.js";
import { type KmsEmulator, startKmsEmulator } from "./kms-emulator/server.js";
import { createKmsClient } from "./kmsAccount.js";
import { KMS_KEY_STATES } from "./kmsKeyState.js";
import { type KmsProxy, startKmsProxy } from "./testing/kmsProxy.js";

const ALIAS = "alias/hot-idle";

let ctx: TestContext;
let emulator: KmsEmulator;
let proxy: KmsProxy;
let kms: KMSClient;
let service: Service | undefined;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  await migrate(ctx.config.env.DATABASE_URL);
  emulator = await startKmsEmulator({});
  proxy = await startKmsProxy(emulator.url);
  kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  kms?.destroy();
  await proxy?.close();
  await emulator?.stop();
  await ctx?.cleanup();
});

async function values(name: string) {
  const metric = service!.common.metrics.registry.getSingleMetric(name);
  return (await metric?.get())?.values ?? [];
}

/** The key's state as the signer exports it: the one state at 1 (and every other at 0). */
async function keyState(): Promise<string> {
  const rows = (await values("custody_kms_key_state")).filter((v) => v.labels.key === ALIAS);
  if (rows.length === 0) return "absent";
  expect(rows.map((v) => v.labels.state).sort()).toEqual([...KMS_KEY_STATES].sort());
  const on = rows.filter((v) => v.value === 1).map((v) => v.labels.state);
  return on.length === 1 ? String(on[0]) : `several: ${on.join(",")}`;
}

async function deletionAt(): Promise<number | undefined> {
  return (await values("custody_kms_key_deletion_timestamp_seconds")).find(
    (v) => v.labels.key === ALIAS,
  )?.value;
}

async function refusals(): Promise<number> {
  return (await values("custody_kms_key_refusals_total"))
    .filter((v) => v.labels.key === ALIAS)
    .reduce((sum, v) => sum + v.value, 0);
}

async function stateBecomes(state: string) {
  let last = "";
  await waitFor(
    `key state ${state}`,
    async () => {
      last = await keyState();
      return last === state;
    },
    { timeoutMs: 60_000 },
  ).catch((error: Error) => {
    throw new Error(`${error.message} (last: ${last})`);
  });
}

describe("an idle hot wallet key", () => {
  it("is seen pending deletion, disabled, unknown and moved without signing anything", async () => {
    const newKey = async () =>
      (
        await kms.send(
          new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
        )
      ).KeyMetadata!.KeyId!;
    const walletKey = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: ALIAS, TargetKeyId: walletKey }));

    const chain = ctx.config.chains[0]!;
    const config = {
      ...ctx.config,
      hotWallets: [{ chain: chain.key, kmsKeyId: ALIAS }],
      env: {
        ...ctx.config.env,
        AWS_ENDPOINT_URL_KMS: proxy.url,
        AWS_REGION: "us-east-1",
        KMS_KEY_CHECK_INTERVAL_S: 1,
      },
    } as Config;
    service = await startService(config, { roles: ["signer"] });
    // Loaded and pinned by the signer (signer/hotWalletKeys.ts).
    await waitFor(
      "the wallet key pinned",
      async () =>
        (
          await ctx.db.pool.query("SELECT 1 FROM custody.hot_wallet_keys WHERE key_id = $1", [
            ALIAS,
          ])
        ).rowCount === 1,
      { timeoutMs: 30_000 },
    );
    // old code: key state enabled: waitFor timed out (last: absent): no check of an idle key.
    await stateBecomes("enabled");
    expect(await deletionAt()).toBeUndefined();

    // A mistaken ops action schedules the idle wallet's key for deletion.
    const scheduled = await kms.send(
      new ScheduleKeyDeletionCommand({ KeyId: walletKey, PendingWindowInDays: 7 }),
    );
    await stateBecomes("pending_deletion");
    expect(await deletionAt()).toBe(Math.floor(scheduled.DeletionDate!.getTime() / 1000));

    // KMS does not answer (every retry of one check fails): unknown, not enabled nor deleted,
    // and the deletion seen last is still exported.
    proxy.failNext("DescribeKey", 9);
    await stateBecomes("unknown");
    expect(await deletionAt()).toBe(Math.floor(scheduled.DeletionDate!.getTime() / 1000));
    await stateBecomes("pending_deletion");

    // Cancelled: KMS leaves the key disabled until it is enabled.
    await kms.send(new CancelKeyDeletionCommand({ KeyId: walletKey }));
    await stateBecomes("disabled");
    expect(await deletionAt()).toBeUndefined();
    await kms.send(new EnableKeyCommand({ KeyId: walletKey }));
    await stateBecomes("enabled");

    // The alias moved to another key (Enabled): the wallet's own key is no longer what it names.
    await kms.send(new UpdateAliasCommand({ AliasName: ALIAS, TargetKeyId: await newKey() }));
    await stateBecomes("other_key");

    // All of it seen while nothing was signed: no refusal was ever counted.
    expect(await refusals()).toBe(0);

    // A check KMS does not answer does not hold the signer's shutdown (each try waits 5 s, and
    // the SDK retries it).
    const held = proxy.holdNext("DescribeKey");
    await held.reached;
    const stopping = Date.now();
    await service.stop();
    service = undefined;
    held.release();
    // Without the abort: expected 3014 to be less than 2000 (the role's stop was abandoned at
    // SHUTDOWN_TIMEOUT_S - 5 s, ops/start.ts).
    expect(Date.now() - stopping).toBeLessThan(2_000);
  }, 180_000);
});
