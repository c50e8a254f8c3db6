/**
 * The state of every configured hot wallet key as KMS tells it, asked every
 * KMS_KEY_CHECK_INTERVAL_S whether or not the key signs (custody_kms_key_state; alerts
 * KmsKeyNotEnabled, KmsKeyStateUnknown). KMS refusals were counted only when a signature was
 * needed (KmsKeyUnusable): a key disabled or scheduled for deletion by a mistaken IAM or ops action
 * went unseen while its wallet was idle, and a rarely used wallet's key could reach the end of its
 * 7-30 day waiting period, and take what its address holds with it, while the deletion could still
 * have been cancelled.
 *
 * A key is `enabled` only when KMS says Enabled, it is still an ECC_SECG_P256K1 / SIGN_VERIFY key,
 * and (once a signer has pinned its address, signer/hotWalletKeys.ts) its public key is still that
 * address's: an alias moved to another key and the wallet's own key then scheduled for deletion
 * looked Enabled through the alias. A check that gets no answer is `unknown`, never `enabled` nor
 * `deleted`: missing data is not evidence, and the last deletion date seen stays exported.
 */
import {
  DescribeKeyCommand,
  GetPublicKeyCommand,
  type KeyMetadata,
  type KMSClient,
} from "@aws-sdk/client-kms";
import type { Gauge } from "prom-client";
import { publicKeyToAddress } from "viem/accounts";
import type { Pool } from "../foundation/db.js";
import type { Logger } from "../foundation/logger.js";
import { type Loop, startLoop } from "../foundation/loop.js";
import { gaugeOnce, type Metrics } from "../foundation/metrics.js";
import { publicKeyFromSpki } from "./kmsAccount.js";

/** KMS's KeyState values in the custody team's labels, and ours (not_found … unknown). */
const FROM_KMS = {
  Enabled: "enabled",
  Disabled: "disabled",
  PendingDeletion: "pending_deletion",
  PendingReplicaDeletion: "pending_replica_deletion",
  PendingImport: "pending_import",
  Unavailable: "unavailable",
  Creating: "creating",
  Updating: "updating",
} as const;

/** The `state` values of custody_kms_key_state, each exported per key (1: the key's, 0: others). */
export const KMS_KEY_STATES = [
  ...Object.values(FROM_KMS),
  /** KMS answers that no such key (or alias) exists: deleted, or the alias removed. */
  "not_found",
  /** Enabled, but not an ECC_SECG_P256K1 / SIGN_VERIFY key. */
  "unsuitable",
  /** Enabled, but its address is not the one pinned (or configured) for the wallet. */
  "other_key",
  /** KMS did not answer (timeout, throttling, access denied, an unknown KeyState): not evidence. */
  "unknown",
] as const;
export type KmsKeyState = (typeof KMS_KEY_STATES)[number];

export type KmsKeyCheck = {
  state: KmsKeyState;
  /** When a key pending deletion is deleted for good. */
  deletionDate?: Date;
  /** Why, for the log (an error's name, the spec found, the other address). */
  detail?: string;
};

const errorName = (error: unknown) => (error as { name?: string })?.name ?? String(error);

/**
 * One key's state. `expected`: the addresses the key must sign for (pinned on its chains, and
 * configured), lowercase; empty: not yet known (no signer loaded it), nothing compared.
 */
export async function checkKmsKey(
  kms: KMSClient,
  keyId: string,
  expected: readonly string[],
  signal?: AbortSignal,
): Promise<KmsKeyCheck> {
  const options = signal ? { abortSignal: signal } : {};
  let meta: KeyMetadata | undefined;
  try {
    meta = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }), options)).KeyMetadata;
  } catch (error) {
    if (errorName(error) === "NotFoundException")
      return { state: "not_found", detail: (error as Error).message };
    return { state: "unknown", detail: errorName(error) };
  }
  if (!meta) return { state: "unknown", detail: "DescribeKey returned no KeyMetadata" };
  const state = FROM_KMS[meta.KeyState as keyof typeof FROM_KMS];
  if (!state) return { state: "unknown", detail: `KeyState ${String(meta.KeyState)}` };
  if (state !== "enabled")
    return {
      state,
      ...(meta.DeletionDate ? { deletionDate: new Date(meta.DeletionDate) } : {}),
      detail: `KeyState ${meta.KeyState} (key ${meta.KeyId})`,
    };
  const spec = meta.KeySpec ?? meta.CustomerMasterKeySpec;
  if (spec !== "ECC_SECG_P256K1" || meta.KeyUsage !== "SIGN_VERIFY")
    return { state: "unsuitable", detail: `key ${meta.KeyId}: ${spec} / ${meta.KeyUsage}` };
  if (expected.length === 0) return { state };
  let address: string;
  try {
    const info = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }), options);
    address = publicKeyToAddress(publicKeyFromSpki(info.PublicKey ?? new Uint8Array()));
  } catch (error) {
    // Disabled or deleted between the two calls: KMS's answer; anything else tells nothing.
    const name = errorName(error);
    if (name === "DisabledException") return { state: "disabled", detail: name };
    if (name === "NotFoundException") return { state: "not_found", detail: name };
    return { state: "unknown", detail: `GetPublicKey: ${name}` };
  }
  const now = address.toLowerCase();
  if (expected.some((a) => a !== now))
    return {
      state: "other_key",
      detail: `key ${meta.KeyId} signs for ${now}, the wallet is ${expected.join(", ")}`,
    };
  return { state };
}

export type KmsKeyStateMetrics = { state: Gauge<"key" | "state">; deletion: Gauge<"key"> };

export function kmsKeyStateMetrics(metrics: Metrics): KmsKeyStateMetrics {
  return {
    state: gaugeOnce(metrics.registry, {
      name: "custody_kms_key_state",
      help: "State of each configured hot wallet key as KMS last told this signer (1 for the key's state, 0 for the others): enabled, disabled, pending_deletion, not_found, other_key, unknown (no answer), ...",
      labelNames: ["key", "state"],
    }),
    deletion: gaugeOnce(metrics.registry, {
      name: "custody_kms_key_deletion_timestamp_seconds",
      help: "When a hot wallet key pending deletion is deleted for good, with what its address holds (unix seconds; absent: not pending deletion)",
      labelNames: ["key"],
    }),
  };
}

/** A key the signer role serves: its config id, and the chains and addresses it signs for. */
export type WatchedKmsKey = { keyId: string; chainIds: number[]; addresses: string[] };

/**
 * The check of every key in `keys` each `intervalMs`, first at once; exported at `unknown` until
 * its first answer. `stop` abandons a check in progress (a KMS that does not answer would hold
 * it through every retry, past the shutdown timeout).
 */
export function startKmsKeyStateCheck({
  kms,
  pool,
  metrics,
  logger,
  keys,
  intervalMs,
}: {
  kms: KMSClient;
  pool: Pool;
  metrics: Metrics;
  logger: Logger;
  keys: readonly WatchedKmsKey[];
  intervalMs: number;
}): Loop {
  const m = kmsKeyStateMetrics(metrics);
  const set = (key: string, state: KmsKeyState) => {
    for (const s of KMS_KEY_STATES) m.state.set({ key, state: s }, s === state ? 1 : 0);
  };
  const last = new Map<string, KmsKeyState>();
  for (const k of keys) set(k.keyId, "unknown");
  const abort = new AbortController();
  const loop = startLoop({
    name: "kms key states",
    intervalMs,
    logger,
    fn: async () => {
      for (const k of keys) {
        if (abort.signal.aborted) return;
        let check: KmsKeyCheck;
        try {
          const { rows } = await pool.query<{ address: string }>(
            "SELECT DISTINCT address FROM custody.hot_wallet_keys WHERE key_id = $1 AND chain_id = ANY($2::int[])",
            [k.keyId, k.chainIds],
          );
          const expected = [
            ...new Set([...rows.map((r) => r.address), ...k.addresses.map((a) => a.toLowerCase())]),
          ];
          check = await checkKmsKey(kms, k.keyId, expected, abort.signal);
        } catch (error) {
          // Without the pinned address an Enabled key is not known to be the wallet's.
          check = { state: "unknown", detail: `pinned address unread: ${errorName(error)}` };
        }
        if (abort.signal.aborted) return;
        set(k.keyId, check.state);
        if (check.deletionDate)
          m.deletion.set({ key: k.keyId }, Math.floor(check.deletionDate.getTime() / 1000));
        // Unknown: the deletion seen last may still be pending.
        else if (check.state !== "unknown") m.deletion.remove({ key: k.keyId });
        if (last.get(k.keyId) !== check.state) {
          const entry = {
            key: k.keyId,
            state: check.state,
            detail: check.detail,
            deletion_date: check.deletionDate?.toISOString(),
          };
          if (check.state === "enabled") logger.info({ msg: "kms key enabled", ...entry });
          else logger.warn({ msg: "kms key not usable", ...entry });
          last.set(k.keyId, check.state);
        }
      }
    },
  });
  return {
    async stop() {
      abort.abort();
      await loop.stop();
    },
  };
}
