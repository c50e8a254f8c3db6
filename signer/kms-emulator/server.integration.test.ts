/**
 * The KMS emulator's own endpoint: the URL it reports is one the AWS SDK can call, on IPv4 and on
 * IPv6 loopback (an IPv6 address must be bracketed in a URL).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateAliasCommand, CreateKeyCommand, GetPublicKeyCommand } from "@aws-sdk/client-kms";
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
});
