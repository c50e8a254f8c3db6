/**
 * A KMS key as a viem Account. The private key never leaves KMS: we sign keccak digests with
 * `Sign` (MessageType DIGEST, ECDSA_SHA_256), parse the DER answer, move s to the lower half
 * (EIP-2) and find yParity by recovering our own address. The client (createKmsClient) retries
 * throttling and transient failures with the AWS SDK's adaptive retry.
 */
import {
  GetPublicKeyCommand,
  KMSClient,
  type KMSClientConfig,
  SignCommand,
} from "@aws-sdk/client-kms";
import type { WeierstrassPoint } from "@noble/curves/abstract/weierstrass.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { Counter, Histogram, type Registry } from "prom-client";
import {
  type Address,
  bytesToHex,
  type Hex,
  hashMessage,
  hashTypedData,
  hexToBytes,
  keccak256,
  type LocalAccount,
  numberToHex,
  type Signature,
  serializeSignature,
  serializeTransaction,
} from "viem";
import { publicKeyToAddress, toAccount } from "viem/accounts";
import { parseDerSignature, toLowS } from "./der.js";
import { KmsKeyUnsuitableError, KmsSignatureError, KmsThrottledError } from "./errors.js";

export type KmsAccount = LocalAccount<"kms"> & {
  keyId: string;
  /** Sign a 32-byte digest; returns a low-s signature with the yParity that recovers our address. */
  signDigest: (digest: Hex) => Promise<Signature>;
};

export type KmsMetrics = {
  signSeconds: Histogram;
  throttles: Counter;
  keyRefusals: Counter<"key" | "reason">;
};

/**
 * KMS errors that say the key itself cannot sign (not a passing failure), by the `reason` of
 * custody_kms_key_refusals_total. KMSInvalidStateException is a key pending deletion (or pending
 * import, or unavailable): past its waiting period the key, and what its address holds, is gone.
 */
const KEY_REFUSALS: Record<string, string> = {
  DisabledException: "disabled",
  KMSInvalidStateException: "invalid_state",
  NotFoundException: "not_found",
  AccessDeniedException: "access_denied",
};
/** The reasons exported at 0 per key; `other_key`: a signature that is not our key's. */
export const KEY_REFUSAL_REASONS = [...Object.values(KEY_REFUSALS), "other_key"] as const;

const kmsMetricsByRegistry = new WeakMap<Registry, KmsMetrics>();

/** KMS metrics, registered once per registry. */
export function kmsMetrics(registry: Registry): KmsMetrics {
  let m = kmsMetricsByRegistry.get(registry);
  if (!m) {
    m = {
      signSeconds: new Histogram({
        name: "custody_kms_sign_seconds",
        help: "Latency of one KMS Sign call (including throttling retries)",
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [registry],
      }),
      throttles: new Counter({
        name: "custody_kms_throttles_total",
        help: "KMS Sign calls answered with throttling",
        registers: [registry],
      }),
      keyRefusals: new Counter({
        name: "custody_kms_key_refusals_total",
        help: "KMS calls for a hot wallet key refused for the key itself (disabled, pending deletion, not found, access denied) or answered by another key (an alias re-pointed): nothing is signed with it",
        labelNames: ["key", "reason"],
        registers: [registry],
      }),
    };
    kmsMetricsByRegistry.set(registry, m);
  }
  return m;
}

/**
 * Whether a KMS endpoint is the local emulator (which does not authenticate, so the client gets
 * dummy credentials): an endpoint on a loopback host (localhost, 127.0.0.0/8, ::1), or any endpoint
 * when the config's `KMS_EMULATOR` says so (an emulator reached by another name, e.g. in a
 * container). Every other endpoint, such as a VPC or FIPS KMS endpoint, is real AWS and keeps the
 * default credential chain.
 */
export function isKmsEmulatorEndpoint(endpoint: string | undefined, emulator = false): boolean {
  if (!endpoint) return false;
  if (emulator) return true;
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return (
    host === "localhost" ||
    host.endsWith(".localhost") ||
    host === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  );
}

/** One try and up to 8 retries for each KMS call (the hand-written retry allowed the same). */
export const KMS_MAX_ATTEMPTS = 9;

/**
 * Each try of a KMS call is given up after this long (a connection after KMS_CONNECT_TIMEOUT_MS)
 * and retried on a fresh connection. Without it the SDK waits on a silent connection for its
 * 5-minute socket idle timeout per try, 9 tries: a KMS endpoint that swallows a call (a
 * black-holed VPC endpoint, a dropped connection) held the wallet's tick that long, and the tick
 * follows the sent transactions only after it has signed the new ones (mined withdrawals not
 * confirmed, reorged ones not re-sent, stuck ones not bumped), with its lease held so no standby
 * could step in. KMS answers Sign in milliseconds. A try given up after KMS signed loses nothing:
 * those bytes never reached us, and only bytes stored before sending are ever sent.
 */
export const KMS_REQUEST_TIMEOUT_MS = 5_000;
export const KMS_CONNECT_TIMEOUT_MS = 3_000;

/**
 * A KMS client that retries throttling and transient failures itself: the AWS SDK's adaptive
 * mode (full-jitter exponential backoff, throttling on a longer base, and a client-side rate
 * limiter that slows every call of this client once KMS throttles, so the signers of a process
 * share one budget). Errors that are not retryable (a key that does not exist, is disabled or
 * pending deletion, a bad request) fail at the first answer.
 * With the emulator's endpoint (see isKmsEmulatorEndpoint), dummy credentials; with any other
 * endpoint, the default AWS credential chain.
 */
export function createKmsClient(options: {
  region: string;
  endpoint?: string | undefined;
  /** The config's KMS_EMULATOR: the endpoint is the emulator though not on loopback. */
  emulator?: boolean;
}): KMSClient {
  const config: KMSClientConfig = {
    region: options.region,
    retryMode: "adaptive",
    maxAttempts: KMS_MAX_ATTEMPTS,
    // Without throwOnRequestTimeout the SDK only logs a warning when requestTimeout passes.
    requestHandler: {
      connectionTimeout: KMS_CONNECT_TIMEOUT_MS,
      requestTimeout: KMS_REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    },
  };
  if (options.endpoint) config.endpoint = options.endpoint;
  if (isKmsEmulatorEndpoint(options.endpoint, options.emulator)) {
    config.credentials = { accessKeyId: "emulator", secretAccessKey: "emulator" };
  }
  return new KMSClient(config);
}

const THROTTLE_NAMES = new Set([
  "ThrottlingException",
  "TooManyRequestsException",
  "LimitExceededException",
  "RequestLimitExceeded",
]);

function isThrottle(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return THROTTLE_NAMES.has(e?.name ?? "") || e?.$metadata?.httpStatusCode === 429;
}

/** The uncompressed point at the end of a secp256k1 SubjectPublicKeyInfo. */
export function publicKeyFromSpki(spki: Uint8Array): Hex {
  if (spki.length < 65) throw new Error(`public key too short (${spki.length} bytes)`);
  const point = spki.subarray(spki.length - 65);
  if (point[0] !== 0x04) throw new Error("public key is not an uncompressed EC point");
  // Rejects points not on secp256k1 (a P-256 key would land here with the same length).
  secp256k1.Point.fromBytes(point);
  return bytesToHex(point);
}

/**
 * yParity of a low-s signature by our own public key Q: R = (z/s)G + (r/s)Q is the signature's
 * nonce point, so R.x = r checks the signature and R.y's parity is yParity. One multiplication
 * with precomputed tables for G and Q instead of up to two public-key recoveries.
 */
export function yParityFor(
  digest: Hex,
  r: bigint,
  s: bigint,
  publicKey: WeierstrassPoint<bigint>,
): 0 | 1 {
  const Fn = secp256k1.Point.Fn;
  const z = Fn.create(BigInt(digest));
  const w = Fn.inv(s);
  const R = secp256k1.Point.BASE.multiply(Fn.create(z * w))
    .add(publicKey.multiply(Fn.create(r * w)))
    .toAffine();
  if (R.x !== r) throw new Error("signature does not verify against the key's public key");
  return (R.y & 1n) === 1n ? 1 : 0;
}

export async function createKmsAccount({
  kms,
  keyId,
  registry,
}: {
  kms: KMSClient;
  keyId: string;
  registry?: Registry;
}): Promise<KmsAccount> {
  const metrics = registry ? kmsMetrics(registry) : undefined;
  // At 0 from the start: KmsKeyUnusable is increase() > 0 (a series first seen at 1 never fires).
  for (const reason of KEY_REFUSAL_REASONS) metrics?.keyRefusals.inc({ key: keyId, reason }, 0);

  // The client retries (createKmsClient). We count every throttled answer: a middleware on the
  // command runs inside the SDK's retry loop, once per attempt.
  function counted<C extends GetPublicKeyCommand | SignCommand>(command: C): C {
    (command as GetPublicKeyCommand).middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (error) {
          if (isThrottle(error)) metrics?.throttles.inc();
          throw error;
        }
      },
      { step: "deserialize", priority: "high", name: "countKmsThrottles" },
    );
    return command;
  }
  // A throttle that outlasted every retry gets our code; anything else (a missing or disabled
  // key, an exhausted transient failure) reaches the caller as the SDK raised it. A key KMS will
  // not use is counted (KmsKeyUnusable): the signer only logs it and retries, so without the
  // count a disabled or pending-deletion key was seen only when withdrawals had waited an hour.
  function rethrow(error: unknown): never {
    const refused = KEY_REFUSALS[(error as { name?: string })?.name ?? ""];
    if (refused) metrics?.keyRefusals.inc({ key: keyId, reason: refused });
    if (!isThrottle(error)) throw error;
    const attempts = (error as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
    throw new KmsThrottledError(keyId, attempts, error);
  }

  const info = await kms.send(counted(new GetPublicKeyCommand({ KeyId: keyId }))).catch(rethrow);
  const spec = info.KeySpec ?? info.CustomerMasterKeySpec;
  if (spec !== "ECC_SECG_P256K1" || info.KeyUsage !== "SIGN_VERIFY") {
    throw new KmsKeyUnsuitableError(
      keyId,
      `key spec ${spec} / usage ${info.KeyUsage}; need ECC_SECG_P256K1 / SIGN_VERIFY`,
    );
  }
  let address: Address;
  let publicKey: WeierstrassPoint<bigint>;
  try {
    const point = publicKeyFromSpki(info.PublicKey ?? new Uint8Array());
    address = publicKeyToAddress(point);
    publicKey = secp256k1.Point.fromBytes(hexToBytes(point));
    // Tables for fast multiplication by our own key (used on every signature).
    publicKey.precompute(8);
  } catch (error) {
    throw new KmsKeyUnsuitableError(keyId, (error as Error).message);
  }

  async function kmsSign(digest: Uint8Array): Promise<Uint8Array> {
    const out = await kms
      .send(
        counted(
          new SignCommand({
            KeyId: keyId,
            Message: digest,
            MessageType: "DIGEST",
            SigningAlgorithm: "ECDSA_SHA_256",
          }),
        ),
      )
      .catch(rethrow);
    if (!out.Signature) throw new KmsSignatureError(keyId, "Sign returned no signature");
    return out.Signature;
  }

  async function signDigest(digest: Hex): Promise<Signature> {
    const bytes = hexToBytes(digest);
    if (bytes.length !== 32) throw new KmsSignatureError(keyId, "digest must be 32 bytes");
    const end = metrics?.signSeconds.startTimer();
    const der = await kmsSign(bytes);
    end?.();
    let r: bigint;
    let s: bigint;
    try {
      ({ r, s } = toLowS(parseDerSignature(der)));
    } catch (error) {
      throw new KmsSignatureError(keyId, (error as Error).message, error);
    }
    let yParity: 0 | 1;
    try {
      yParity = yParityFor(digest, r, s, publicKey);
    } catch (error) {
      // Not our key's signature: KMS signed with another key, an alias re-pointed since we read
      // our public key (refused: never a transaction from an address we do not serve).
      metrics?.keyRefusals.inc({ key: keyId, reason: "other_key" });
      throw new KmsSignatureError(keyId, (error as Error).message, error);
    }
    return {
      r: numberToHex(r, { size: 32 }),
      s: numberToHex(s, { size: 32 }),
      yParity,
      v: yParity === 0 ? 27n : 28n,
    };
  }

  const account = toAccount({
    address,
    async sign({ hash }) {
      return serializeSignature(await signDigest(hash));
    },
    async signMessage({ message }) {
      return serializeSignature(await signDigest(hashMessage(message)));
    },
    async signTransaction(transaction, options) {
      const serializer = options?.serializer ?? serializeTransaction;
      const signature = await signDigest(keccak256(await serializer(transaction)));
      return serializer(transaction, signature);
    },
    async signTypedData(typedData) {
      return serializeSignature(await signDigest(hashTypedData(typedData)));
    },
  });
  return { ...account, source: "kms", keyId, signDigest } as KmsAccount;
}
