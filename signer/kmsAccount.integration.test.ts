/**
 * The KMS account against the emulator through the real @aws-sdk/client-kms, and anvil accepting
 * what it signs. Many signatures are forced so that high s and short r/s really occur.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteAliasCommand,
  GetPublicKeyCommand,
  type KMSClient,
  SignCommand,
  UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { Registry } from "prom-client";
import {
  createPublicClient,
  createWalletClient,
  http,
  keccak256,
  parseEther,
  recoverAddress,
  recoverTransactionAddress,
  toHex,
  verifyMessage,
  verifyTypedData,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { parseDerSignature, SECP256K1_N } from "./der.js";
import { type KmsEmulator, startKmsEmulator } from "./kms-emulator/server.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";
import { startKmsProxy } from "./testing/kmsProxy.js";

let emulator: KmsEmulator;
let kms: KMSClient;
let anvil: Anvil;
let dir: string;

async function createKey(
  client: KMSClient,
  usage: "SIGN_VERIFY" | "KEY_AGREEMENT" = "SIGN_VERIFY",
) {
  const out = await client.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: usage, Description: "test" }),
  );
  return out.KeyMetadata!.KeyId!;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "kms-emulator-"));
  emulator = await startKmsEmulator({ file: path.join(dir, "keys.json") });
  kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
  anvil = await startAnvil({ chainId: 31337, port: 0 });
});

afterAll(async () => {
  kms?.destroy();
  await emulator?.stop();
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("KMS account", () => {
  it("signs messages and typed data that viem verifies", async () => {
    const account = await createKmsAccount({ kms, keyId: await createKey(kms) });
    const signature = await account.signMessage({ message: "custody" });
    expect(await verifyMessage({ address: account.address, message: "custody", signature })).toBe(
      true,
    );
    expect(await verifyMessage({ address: account.address, message: "other", signature })).toBe(
      false,
    );
    const typed = {
      domain: { name: "custody", version: "1", chainId: 31337 },
      types: {
        Transfer: [
          { name: "to", type: "address" },
          { name: "amount", type: "uint256" },
        ],
      },
      primaryType: "Transfer" as const,
      message: { to: account.address, amount: 10n ** 30n },
    };
    const typedSig = await account.signTypedData(typed);
    expect(await verifyTypedData({ ...typed, address: account.address, signature: typedSig })).toBe(
      true,
    );
  });

  it("handles high s and short r/s from KMS over many signatures", async () => {
    const keyId = await createKey(kms);
    const account = await createKmsAccount({ kms, keyId });
    // Observe the raw DER KMS returns, beneath the account.
    const raw: Uint8Array[] = [];
    kms.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const sig = (result.output as { Signature?: Uint8Array }).Signature;
        if (sig) raw.push(sig);
        return result;
      },
      { step: "initialize", name: "captureSignatures" },
    );
    const sigs: { r: bigint; s: bigint }[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const digest = keccak256(toHex(`digest ${i}`));
        const sig = await account.signDigest(digest);
        expect(await recoverAddress({ hash: digest, signature: sig })).toBe(account.address);
        sigs.push({ r: BigInt(sig.r), s: BigInt(sig.s) });
      }
    } finally {
      kms.middlewareStack.remove("captureSignatures");
    }
    const parsed = raw.map((d) => ({ len: d.length, ...parseDerSignature(d) }));
    expect(parsed).toHaveLength(1000);
    // Each signature the account returned is KMS's own, with a high s flipped to N - s (EIP-2).
    const half = SECP256K1_N >> 1n;
    expect(sigs).toEqual(parsed.map((p) => ({ r: p.r, s: p.s > half ? SECP256K1_N - p.s : p.s })));
    // KMS really returned high s and short (DER-shortened) components: ~50% high s and ~1.6%
    // short r or s are expected from a random nonce, so these cases were exercised.
    const highS = parsed.filter((p) => p.s > half).length;
    const shortRS = parsed.filter((p) => p.r < 1n << 248n || p.s < 1n << 248n).length;
    expect(highS).toBeGreaterThan(350);
    expect(shortRS).toBeGreaterThan(0);
    expect(new Set(parsed.map((p) => p.len)).size).toBeGreaterThan(1);
  }, 240_000); // 1000 KMS round trips: seconds idle, much longer on a loaded machine

  it("signs transactions anvil accepts and mines", async () => {
    const account = await createKmsAccount({ kms, keyId: await createKey(kms) });
    const publicClient = createPublicClient({ transport: http(anvil.rpcUrl) });
    await publicClient.request({
      method: "anvil_setBalance" as never,
      params: [account.address, toHex(parseEther("10"))] as never,
    });
    const wallet = createWalletClient({ account, transport: http(anvil.rpcUrl) });
    const chain = {
      id: 31337,
      name: "anvil",
      nativeCurrency: { name: "ETH", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [anvil.rpcUrl] } },
    } as const;
    for (let i = 0; i < 12; i++) {
      const request = await wallet.prepareTransactionRequest({
        chain,
        to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        value: BigInt(i + 1),
      });
      const serialized = await account.signTransaction(request as never);
      expect(await recoverTransactionAddress({ serializedTransaction: serialized as never })).toBe(
        account.address,
      );
      const hash = await publicClient.sendRawTransaction({ serializedTransaction: serialized });
      const receipt = await publicClient.waitForTransactionReceipt({ hash });
      expect(receipt.status).toBe("success");
      expect(receipt.from).toBe(account.address.toLowerCase());
    }
    expect(await publicClient.getTransactionCount({ address: account.address })).toBe(12);
  });

  it("retries throttling with backoff and counts it", async () => {
    const throttling = await startKmsEmulator({ throttleEvery: 3 });
    const client = createKmsClient({ region: "us-east-1", endpoint: throttling.url });
    try {
      const registry = new Registry();
      const account = await createKmsAccount({
        kms: client,
        keyId: await createKey(client),
        registry,
      });
      for (let i = 0; i < 10; i++) {
        const sig = await account.signMessage({ message: `m${i}` });
        expect(
          await verifyMessage({ address: account.address, message: `m${i}`, signature: sig }),
        ).toBe(true);
      }
      const throttles = await registry.getSingleMetricAsString("custody_kms_throttles_total");
      expect(Number(/ (\d+)$/m.exec(throttles)?.[1])).toBeGreaterThanOrEqual(3);
    } finally {
      client.destroy();
      await throttling.stop();
    }
  });

  it("retries a transient KMS failure; a key in a bad state or missing fails at the first answer", async () => {
    const proxy = await startKmsProxy(emulator.url);
    const client = createKmsClient({ region: "us-east-1", endpoint: proxy.url });
    try {
      const account = await createKmsAccount({ kms: client, keyId: await createKey(client) });
      // Two HTTP 500 KMSInternalException, then the emulator: one signature, three Sign calls.
      proxy.failNext("Sign", 2);
      let before = proxy.calls("Sign");
      const sig = await account.signMessage({ message: "after two 500s" });
      expect(
        await verifyMessage({
          address: account.address,
          message: "after two 500s",
          signature: sig,
        }),
      ).toBe(true);
      expect(proxy.calls("Sign") - before).toBe(3);
      // HTTP 400 KMSInvalidStateException (a disabled key): not retried, the SDK's error as is.
      before = proxy.calls("Sign");
      proxy.failNth("Sign", before + 1, "invalid_state");
      await expect(account.signMessage({ message: "disabled" })).rejects.toMatchObject({
        name: "KMSInvalidStateException",
      });
      expect(proxy.calls("Sign") - before).toBe(1);
      // A key that does not exist: one GetPublicKey call.
      const lookups = proxy.calls("GetPublicKey");
      await expect(createKmsAccount({ kms: client, keyId: "alias/none" })).rejects.toMatchObject({
        name: "NotFoundException",
      });
      expect(proxy.calls("GetPublicKey") - lookups).toBe(1);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });
});

describe("a hot wallet key KMS will not sign with", () => {
  /** custody_kms_key_refusals_total{key, reason}; "absent" when no such series is exported. */
  async function refusals(registry: Registry, key: string, reason: string): Promise<string> {
    const m = await registry.getSingleMetric("custody_kms_key_refusals_total")?.get();
    const v = m?.values.find((x) => x.labels.key === key && x.labels.reason === reason);
    return v === undefined ? "absent" : String(v.value);
  }

  it("counts a disabled or pending-deletion key, a deleted alias and an alias re-pointed to another key (KmsKeyUnusable), and signs nothing", async () => {
    const proxy = await startKmsProxy(emulator.url);
    const client = createKmsClient({ region: "us-east-1", endpoint: proxy.url });
    try {
      const registry = new Registry();
      const alias = "alias/hot-refused";
      await client.send(
        new CreateAliasCommand({ AliasName: alias, TargetKeyId: await createKey(client) }),
      );
      const account = await createKmsAccount({ kms: client, keyId: alias, registry });
      // Exported at 0 once the key is loaded: the alert's increase() sees the first refusal.
      for (const reason of ["disabled", "invalid_state", "not_found", "access_denied", "other_key"])
        expect(await refusals(registry, alias, reason), reason).toBe("0");
      await account.signMessage({ message: "fine" });

      // Pending deletion (or disabled, or pending import): KMSInvalidStateException.
      proxy.failNth("Sign", proxy.calls("Sign") + 1, "invalid_state");
      await expect(account.signMessage({ message: "pending deletion" })).rejects.toMatchObject({
        name: "KMSInvalidStateException",
      });
      expect(await refusals(registry, alias, "invalid_state")).toBe("1");

      // The alias moved to another key: KMS signs, as that key; refused, never returned.
      await client.send(
        new UpdateAliasCommand({ AliasName: alias, TargetKeyId: await createKey(client) }),
      );
      await expect(account.signMessage({ message: "other key" })).rejects.toMatchObject({
        code: "SIGNER_KMS_BAD_SIGNATURE",
      });
      expect(await refusals(registry, alias, "other_key")).toBe("1");

      // The alias deleted: NotFoundException.
      await client.send(new DeleteAliasCommand({ AliasName: alias }));
      await expect(account.signMessage({ message: "no alias" })).rejects.toMatchObject({
        name: "NotFoundException",
      });
      expect(await refusals(registry, alias, "not_found")).toBe("1");
    } finally {
      client.destroy();
      await proxy.close();
    }
  });
});

describe("KMS emulator", () => {
  it("rejects what real KMS rejects", async () => {
    const agreement = await createKey(kms, "KEY_AGREEMENT");
    const signing = await createKey(kms);
    const digest = new Uint8Array(32).fill(7);
    await expect(
      kms.send(
        new SignCommand({
          KeyId: agreement,
          Message: digest,
          MessageType: "DIGEST",
          SigningAlgorithm: "ECDSA_SHA_256",
        }),
      ),
    ).rejects.toMatchObject({ name: "InvalidKeyUsageException" });
    await expect(
      kms.send(
        new SignCommand({
          KeyId: signing,
          Message: digest.subarray(0, 31),
          MessageType: "DIGEST",
          SigningAlgorithm: "ECDSA_SHA_256",
        }),
      ),
    ).rejects.toMatchObject({ name: "ValidationException" });
    await expect(
      kms.send(
        new SignCommand({
          KeyId: signing,
          Message: digest,
          MessageType: "HASH" as never,
          SigningAlgorithm: "ECDSA_SHA_256",
        }),
      ),
    ).rejects.toMatchObject({ name: "ValidationException" });
    await expect(
      kms.send(
        new SignCommand({
          KeyId: signing,
          Message: digest,
          MessageType: "DIGEST",
          SigningAlgorithm: "RSASSA_PSS_SHA_256",
        }),
      ),
    ).rejects.toMatchObject({ name: "InvalidKeyUsageException" });
    await expect(kms.send(new GetPublicKeyCommand({ KeyId: "alias/none" }))).rejects.toMatchObject({
      name: "NotFoundException",
    });
    await expect(createKmsAccount({ kms, keyId: agreement })).rejects.toMatchObject({
      code: "SIGNER_KMS_KEY_UNSUITABLE",
    });
  });

  it("persists keys and aliases to its file across restarts", async () => {
    const keyId = await createKey(kms);
    await kms.send(new CreateAliasCommand({ AliasName: "alias/hot-test", TargetKeyId: keyId }));
    const before = await createKmsAccount({ kms, keyId: "alias/hot-test" });
    await emulator.stop();
    // The restarted emulator binds a fresh port (re-binding the old one could race another
    // process for it); a client for its new address must find the same key by its alias.
    emulator = await startKmsEmulator({ file: path.join(dir, "keys.json") });
    const restarted = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
    try {
      const after = await createKmsAccount({ kms: restarted, keyId: "alias/hot-test" });
      expect(after.address).toBe(before.address);
      const sig = await after.signMessage({ message: "still mine" });
      expect(
        await verifyMessage({ address: before.address, message: "still mine", signature: sig }),
      ).toBe(true);
    } finally {
      restarted.destroy();
    }
  });
});
