/**
 * The KMS emulator's own endpoint: the URL it reports is one the AWS SDK can call, on IPv4 and on
 * IPv6 loopback (an IPv6 address must be bracketed in a URL).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  GetPublicKeyCommand,
  ScheduleKeyDeletionCommand,
} from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKmsAccount, createKmsClient } from "../kmsAccount.js";
import { startKmsEmulator } from "./server.js";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "kms-emulator-host-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("KMS emulator endpoint", () => {
  for (const host of ["127.0.0.1", "::1"]) {
    it(`serves CreateKey and GetPublicKey at the URL it reports when bound to ${host}`, async () => {
      const emulator = await startKmsEmulator({ host, file: path.join(dir, `${host}.json`) });
      const kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
      try {
        expect(new URL(emulator.url).port).toBe(String(emulator.port));
        const created = await kms.send(
          new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
        );
        const keyId = created.KeyMetadata?.KeyId;
        expect(keyId).toMatch(/\S/);
        const pub = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
        expect(pub.KeySpec).toBe("ECC_SECG_P256K1");
        expect(pub.PublicKey?.length).toBeGreaterThan(60);
      } finally {
        kms.destroy();
        await emulator.stop();
      }
    });
  }

  it("finds a key by its id, key ARN, alias name and alias ARN, as KMS does", async () => {
    const emulator = await startKmsEmulator({ file: path.join(dir, "arn.json") });
    const kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
    try {
      const created = await kms.send(
        new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
      );
      const { KeyId: keyId, Arn: arn } = created.KeyMetadata!;
      expect(arn).toBe(`arn:aws:kms:us-east-1:000000000000:key/${keyId}`);
      await kms.send(new CreateAliasCommand({ AliasName: "alias/arn-test", TargetKeyId: keyId }));
      const address = (await createKmsAccount({ kms, keyId: keyId! })).address;
      // The config takes a key id, ARN or alias (hotWallets[].kmsKeyId): each one the same key.
      for (const id of [
        arn!,
        "alias/arn-test",
        "arn:aws:kms:us-east-1:000000000000:alias/arn-test",
      ]) {
        const account = await createKmsAccount({ kms, keyId: id });
        expect(account.address, id).toBe(address);
        await account.signMessage({ message: "by ARN" });
      }
    } finally {
      kms.destroy();
      await emulator.stop();
    }
  });

  it("disables, enables, schedules and cancels a key's deletion with KMS's states and errors", async () => {
    const emulator = await startKmsEmulator({ file: path.join(dir, "states.json") });
    const kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
    try {
      const created = await kms.send(
        new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
      );
      const { KeyId: keyId, Arn: arn } = created.KeyMetadata!;
      await kms.send(new CreateAliasCommand({ AliasName: "alias/states", TargetKeyId: keyId }));
      const account = await createKmsAccount({ kms, keyId: "alias/states" });
      const describe = async () =>
        (await kms.send(new DescribeKeyCommand({ KeyId: "alias/states" }))).KeyMetadata!;
      const refusal = (p: Promise<unknown>) =>
        p.then(
          () => "signed",
          (e: Error) => `${e.name}: ${e.message}`,
        );

      // old code: UnknownOperationException: The emulator does not implement DisableKey
      await kms.send(new DisableKeyCommand({ KeyId: keyId }));
      expect(await describe()).toMatchObject({ KeyState: "Disabled", Enabled: false });
      expect(await refusal(account.signMessage({ message: "x" }))).toBe(
        `DisabledException: ${arn} is disabled.`,
      );
      expect(await refusal(kms.send(new GetPublicKeyCommand({ KeyId: keyId })))).toBe(
        `DisabledException: ${arn} is disabled.`,
      );
      await kms.send(new EnableKeyCommand({ KeyId: keyId }));
      expect(await describe()).toMatchObject({ KeyState: "Enabled", Enabled: true });
      await account.signMessage({ message: "enabled again" });

      expect(
        await refusal(
          kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 3 })),
        ),
      ).toMatch(/^ValidationException/);
      const before = Date.now();
      const scheduled = await kms.send(
        new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }),
      );
      expect(scheduled).toMatchObject({ KeyId: arn, KeyState: "PendingDeletion" });
      const meta = await describe();
      expect(meta).toMatchObject({
        KeyState: "PendingDeletion",
        Enabled: false,
        PendingDeletionWindowInDays: 7,
      });
      const days = (meta.DeletionDate!.getTime() - before) / 86_400_000;
      expect(days).toBeGreaterThan(6.99);
      expect(days).toBeLessThan(7.01);
      expect(await refusal(account.signMessage({ message: "x" }))).toBe(
        `KMSInvalidStateException: ${arn} is pending deletion.`,
      );
      // A key pending deletion cannot be enabled or disabled, only its deletion cancelled.
      expect(await refusal(kms.send(new EnableKeyCommand({ KeyId: keyId })))).toMatch(
        /^KMSInvalidStateException/,
      );
      await kms.send(new CancelKeyDeletionCommand({ KeyId: keyId }));
      expect(await describe()).toMatchObject({ KeyState: "Disabled", Enabled: false });
      expect((await describe()).DeletionDate).toBeUndefined();
      expect(await refusal(kms.send(new CancelKeyDeletionCommand({ KeyId: keyId })))).toMatch(
        /^KMSInvalidStateException/,
      );
      await kms.send(new EnableKeyCommand({ KeyId: keyId }));
      await account.signMessage({ message: "cancelled and enabled" });
    } finally {
      kms.destroy();
      await emulator.stop();
    }
  });

  it("deletes a key for good, and its aliases, once its deletion date has passed", async () => {
    const file = path.join(dir, "deleted.json");
    const emulator = await startKmsEmulator({ file });
    const kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
    try {
      const keyId = (
        await kms.send(
          new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
        )
      ).KeyMetadata!.KeyId!;
      await kms.send(new CreateAliasCommand({ AliasName: "alias/gone", TargetKeyId: keyId }));
      // The waiting period is 7 days at least: the store is moved past it.
      emulator.store.setState(keyId, "PendingDeletion", {
        deletionDate: Math.floor(Date.now() / 1000) - 1,
        pendingWindowInDays: 7,
      });
      for (const id of [keyId, "alias/gone"])
        await expect(kms.send(new DescribeKeyCommand({ KeyId: id }))).rejects.toMatchObject({
          name: "NotFoundException",
        });
    } finally {
      kms.destroy();
      await emulator.stop();
    }
  });
});
