/**
 * A local AWS KMS for dev, demo and tests: an HTTP server on loopback speaking the KMS JSON 1.1
 * protocol (`X-Amz-Target: TrentService.<Operation>`), so @aws-sdk/client-kms works unchanged
 * with `endpoint` / `AWS_ENDPOINT_URL_KMS`. Requests are not authenticated (loopback only).
 *
 * Signatures are DER with a random nonce and are NOT normalised to low s, like real KMS: callers
 * must handle high s and short r/s. It rejects what real KMS rejects: wrong key usage, unknown
 * message type or algorithm, a DIGEST that is not 32 bytes. Keys can be disabled, enabled, scheduled
 * for deletion (deleted for good at the deletion date) and have their deletion cancelled, with
 * KMS's rules: Sign and GetPublicKey on a disabled key fail with DisabledException, on a key
 * pending deletion with KMSInvalidStateException; a cancelled deletion leaves the key Disabled.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { hexToBytes } from "viem";
import { createKeyStore, type EmulatedKey, type KeyStore } from "./keyStore.js";

/**
 * Where `custody-node kms-local` and the dev stack keep emulator keys: `.dev/` in the working
 * directory, like `custody-node dev --dir` (git-ignored in the repo). Not beside the code: the
 * compiled program lives in dist/, which every build wipes.
 */
export const DEFAULT_EMULATOR_FILE = path.resolve(".dev", "kms-keys.json");

export type KmsEmulatorOptions = {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Key file (JSON); omitted: in memory. */
  file?: string | undefined;
  region?: string;
  /** Answer every Nth Sign with ThrottlingException (tests exercise the client's backoff). */
  throttleEvery?: number;
};

export type KmsEmulator = { url: string; port: number; store: KeyStore; stop: () => Promise<void> };

class KmsFault extends Error {
  readonly type: string;
  readonly status: number;
  constructor(type: string, message: string, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** SubjectPublicKeyInfo header for an uncompressed secp256k1 point (id-ecPublicKey, secp256k1). */
const SPKI_PREFIX = hexToBytes("0x3056301006072a8648ce3d020106052b8104000a034200");

function spki(key: EmulatedKey): Uint8Array {
  const point = secp256k1.getPublicKey(hexToBytes(`0x${key.secretKey}`), false);
  const out = new Uint8Array(SPKI_PREFIX.length + point.length);
  out.set(SPKI_PREFIX);
  out.set(point, SPKI_PREFIX.length);
  return out;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

const stateOf = (key: EmulatedKey) => key.keyState ?? "Enabled";

function metadata(key: EmulatedKey) {
  const state = stateOf(key);
  return {
    AWSAccountId: "000000000000",
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: key.creationDate,
    Enabled: state === "Enabled",
    Description: key.description,
    KeyUsage: key.keyUsage,
    KeyState: state,
    ...(state === "PendingDeletion"
      ? { DeletionDate: key.deletionDate, PendingDeletionWindowInDays: key.pendingWindowInDays }
      : {}),
    Origin: "AWS_KMS",
    KeyManager: "CUSTOMER",
    CustomerMasterKeySpec: key.keySpec,
    KeySpec: key.keySpec,
    MultiRegion: false,
    ...(key.keyUsage === "SIGN_VERIFY"
      ? { SigningAlgorithms: ["ECDSA_SHA_256"] }
      : { KeyAgreementAlgorithms: ["ECDH"] }),
  };
}

type Body = Record<string, unknown>;

function str(body: Body, field: string, required = true): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) {
    if (required)
      throw new KmsFault(
        "ValidationException",
        `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`,
      );
    return undefined;
  }
  if (typeof v !== "string")
    throw new KmsFault("SerializationException", `${field} must be a string`);
  return v;
}

function keyOf(store: KeyStore, body: Body): EmulatedKey {
  const id = str(body, "KeyId")!;
  const key = store.resolve(id);
  if (!key) {
    throw new KmsFault(
      "NotFoundException",
      id.includes("alias/") ? `Alias ${id} is not found.` : `Key '${id}' does not exist`,
    );
  }
  return key;
}

/** What KMS answers a cryptographic operation (Sign, GetPublicKey) on a key it will not use. */
function usable(key: EmulatedKey): EmulatedKey {
  const state = stateOf(key);
  if (state === "Disabled") throw new KmsFault("DisabledException", `${key.arn} is disabled.`);
  if (state === "PendingDeletion")
    throw new KmsFault("KMSInvalidStateException", `${key.arn} is pending deletion.`);
  return key;
}

function handlers(store: KeyStore, region: string, throttleEvery: number) {
  let signs = 0;
  return {
    CreateKey(body: Body) {
      const spec =
        str(body, "KeySpec", false) ??
        str(body, "CustomerMasterKeySpec", false) ??
        "SYMMETRIC_DEFAULT";
      const usage = str(body, "KeyUsage", false) ?? "ENCRYPT_DECRYPT";
      if (spec !== "ECC_SECG_P256K1") {
        throw new KmsFault(
          "UnsupportedOperationException",
          `The emulator only supports KeySpec ECC_SECG_P256K1, not ${spec}`,
        );
      }
      if (usage !== "SIGN_VERIFY" && usage !== "KEY_AGREEMENT") {
        throw new KmsFault(
          "ValidationException",
          `KeyUsage ${usage} is not compatible with KeySpec ${spec}`,
        );
      }
      const key = store.create({
        keyUsage: usage,
        description: str(body, "Description", false) ?? "",
      });
      return { KeyMetadata: metadata(key) };
    },
    DescribeKey(body: Body) {
      return { KeyMetadata: metadata(keyOf(store, body)) };
    },
    GetPublicKey(body: Body) {
      const key = usable(keyOf(store, body));
      return {
        KeyId: key.arn,
        PublicKey: b64(spki(key)),
        KeySpec: key.keySpec,
        CustomerMasterKeySpec: key.keySpec,
        KeyUsage: key.keyUsage,
        ...(key.keyUsage === "SIGN_VERIFY"
          ? { SigningAlgorithms: ["ECDSA_SHA_256"] }
          : { KeyAgreementAlgorithms: ["ECDH"] }),
      };
    },
    Sign(body: Body) {
      const key = usable(keyOf(store, body));
      signs++;
      if (throttleEvery > 0 && signs % throttleEvery === 0) {
        throw new KmsFault("ThrottlingException", "Rate exceeded");
      }
      if (key.keyUsage !== "SIGN_VERIFY") {
        throw new KmsFault(
          "InvalidKeyUsageException",
          `${key.arn} key usage is ${key.keyUsage} which is not valid for Sign.`,
        );
      }
      const algorithm = str(body, "SigningAlgorithm")!;
      if (algorithm !== "ECDSA_SHA_256") {
        throw new KmsFault(
          "InvalidKeyUsageException",
          `Algorithm ${algorithm} is incompatible with key spec ${key.keySpec}.`,
        );
      }
      const messageType = str(body, "MessageType", false) ?? "RAW";
      const message = Buffer.from(str(body, "Message")!, "base64");
      let digest: Uint8Array;
      if (messageType === "DIGEST") {
        if (message.length !== 32) {
          throw new KmsFault(
            "ValidationException",
            `Digest is invalid length for algorithm ${algorithm}.`,
          );
        }
        digest = message;
      } else if (messageType === "RAW") {
        if (message.length === 0 || message.length > 4096) {
          throw new KmsFault(
            "ValidationException",
            "Message length must be between 1 and 4096 bytes",
          );
        }
        digest = sha256(message);
      } else {
        throw new KmsFault(
          "ValidationException",
          `1 validation error detected: Value '${messageType}' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]`,
        );
      }
      // Random nonce and no low-s normalisation: what real KMS returns.
      const der = secp256k1.sign(digest, hexToBytes(`0x${key.secretKey}`), {
        prehash: false,
        lowS: false,
        extraEntropy: true,
        format: "der",
      });
      return { KeyId: key.arn, Signature: b64(der), SigningAlgorithm: algorithm };
    },
    DisableKey(body: Body) {
      const key = keyOf(store, body);
      if (stateOf(key) === "PendingDeletion")
        throw new KmsFault("KMSInvalidStateException", `${key.arn} is pending deletion.`);
      store.setState(key.keyId, "Disabled");
      return {};
    },
    EnableKey(body: Body) {
      const key = keyOf(store, body);
      if (stateOf(key) === "PendingDeletion")
        throw new KmsFault("KMSInvalidStateException", `${key.arn} is pending deletion.`);
      store.setState(key.keyId, "Enabled");
      return {};
    },
    ScheduleKeyDeletion(body: Body) {
      const key = keyOf(store, body);
      const days = body.PendingWindowInDays ?? 30;
      if (typeof days !== "number" || !Number.isInteger(days) || days < 7 || days > 30) {
        throw new KmsFault(
          "ValidationException",
          `1 validation error detected: Value '${String(days)}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30`,
        );
      }
      if (stateOf(key) === "PendingDeletion")
        throw new KmsFault("KMSInvalidStateException", `${key.arn} is pending deletion.`);
      const deletionDate = Math.floor(Date.now() / 1000) + days * 86_400;
      store.setState(key.keyId, "PendingDeletion", { deletionDate, pendingWindowInDays: days });
      return {
        KeyId: key.arn,
        DeletionDate: deletionDate,
        KeyState: "PendingDeletion",
        PendingWindowInDays: days,
      };
    },
    CancelKeyDeletion(body: Body) {
      const key = keyOf(store, body);
      if (stateOf(key) !== "PendingDeletion")
        throw new KmsFault("KMSInvalidStateException", `${key.arn} is not pending deletion.`);
      // As in KMS: a key whose deletion is cancelled is Disabled until someone enables it.
      store.setState(key.keyId, "Disabled");
      return { KeyId: key.arn };
    },
    ListKeys() {
      return {
        Keys: store.list().map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })),
        Truncated: false,
      };
    },
    CreateAlias(body: Body) {
      const name = str(body, "AliasName")!;
      if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(name) || name.startsWith("alias/aws/")) {
        throw new KmsFault(
          "ValidationException",
          `Alias ${name} must begin with alias/ and contain only alphanumerics, /, _ and -`,
        );
      }
      const key = store.resolve(str(body, "TargetKeyId")!);
      if (!key) throw new KmsFault("NotFoundException", "Target key does not exist");
      try {
        store.setAlias(name, key.keyId, "create");
      } catch {
        throw new KmsFault(
          "AlreadyExistsException",
          `An alias with the name arn:aws:kms:${region}:000000000000:${name} already exists`,
        );
      }
      return {};
    },
    UpdateAlias(body: Body) {
      const name = str(body, "AliasName")!;
      const key = store.resolve(str(body, "TargetKeyId")!);
      if (!key) throw new KmsFault("NotFoundException", "Target key does not exist");
      try {
        store.setAlias(name, key.keyId, "update");
      } catch {
        throw new KmsFault("NotFoundException", `Alias ${name} is not found.`);
      }
      return {};
    },
    DeleteAlias(body: Body) {
      const name = str(body, "AliasName")!;
      if (!store.deleteAlias(name))
        throw new KmsFault("NotFoundException", `Alias ${name} is not found.`);
      return {};
    },
    ListAliases(body: Body) {
      const keyFilter = str(body, "KeyId", false);
      const target = keyFilter ? store.resolve(keyFilter)?.keyId : undefined;
      return {
        Aliases: store
          .aliases()
          .filter((a) => !keyFilter || a.targetKeyId === target)
          .map((a) => ({
            AliasName: a.aliasName,
            AliasArn: `arn:aws:kms:${region}:000000000000:${a.aliasName}`,
            TargetKeyId: a.targetKeyId,
          })),
        Truncated: false,
      };
    },
  } satisfies Record<string, (body: Body) => unknown>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      data += c;
    });
    req.on("end", () => resolve(data));
    req.on("error", reject);
  });
}

function reply(res: ServerResponse, status: number, body: unknown, errorType?: string) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/x-amz-json-1.1",
    "content-length": Buffer.byteLength(payload),
    "x-amzn-requestid": crypto.randomUUID(),
    ...(errorType ? { "x-amzn-errortype": errorType } : {}),
  });
  res.end(payload);
}

export async function startKmsEmulator(options: KmsEmulatorOptions = {}): Promise<KmsEmulator> {
  const region = options.region ?? "us-east-1";
  const store = createKeyStore({ file: options.file, region });
  const ops: Record<string, (body: Body) => unknown> = handlers(
    store,
    region,
    options.throttleEvery ?? 0,
  );
  const server = createServer(async (req, res) => {
    try {
      const target = String(req.headers["x-amz-target"] ?? "");
      const [service, operation = ""] = target.split(".");
      const raw = await readBody(req);
      if (req.method !== "POST" || service !== "TrentService") {
        throw new KmsFault("UnknownOperationException", `Unknown target ${target}`);
      }
      const handler = ops[operation];
      if (!handler)
        throw new KmsFault(
          "UnknownOperationException",
          `The emulator does not implement ${operation}`,
        );
      let body: Body;
      try {
        body = raw ? (JSON.parse(raw) as Body) : {};
      } catch {
        throw new KmsFault("SerializationException", "Request body is not valid JSON");
      }
      reply(res, 200, handler(body));
    } catch (error) {
      if (error instanceof KmsFault) {
        reply(res, error.status, { __type: error.type, message: error.message }, error.type);
      } else {
        reply(
          res,
          500,
          { __type: "KMSInternalException", message: String(error) },
          "KMSInternalException",
        );
      }
    }
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  // An IPv6 address goes in brackets in a URL (http://[::1]:port).
  const host = address.includes(":") ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    port,
    store,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
