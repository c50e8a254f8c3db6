/**
 * The emulator's keys, persisted to one JSON file. This file holds private keys: it exists only
 * for dev, demo and tests (real deployments use AWS KMS, where keys never leave the HSM).
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bytesToHex } from "viem";

export type EmulatedKey = {
  keyId: string;
  arn: string;
  keySpec: "ECC_SECG_P256K1";
  keyUsage: "SIGN_VERIFY" | "KEY_AGREEMENT";
  description: string;
  /** Epoch seconds. */
  creationDate: number;
  /** Hex, no 0x. Emulator only. */
  secretKey: string;
  /** KMS KeyState; absent (files written before it existed): Enabled. */
  keyState?: EmulatedKeyState;
  /** Epoch seconds when a key pending deletion is deleted for good. */
  deletionDate?: number;
  pendingWindowInDays?: number;
};

/** The KMS key states the emulator can be driven into (DisableKey, ScheduleKeyDeletion, ...). */
export type EmulatedKeyState = "Enabled" | "Disabled" | "PendingDeletion";

type StoreFile = { version: 1; keys: EmulatedKey[]; aliases: Record<string, string> };

export type KeyStore = {
  create: (opts: { keyUsage: EmulatedKey["keyUsage"]; description: string }) => EmulatedKey;
  /** Resolve a key id, key ARN, alias name or alias ARN. */
  resolve: (keyIdOrAlias: string) => EmulatedKey | undefined;
  list: () => EmulatedKey[];
  aliases: () => { aliasName: string; targetKeyId: string }[];
  setAlias: (aliasName: string, keyId: string, mode: "create" | "update") => void;
  deleteAlias: (aliasName: string) => boolean;
  /** Change a key's state (the emulator's DisableKey, EnableKey, ScheduleKeyDeletion, ...). */
  setState: (
    keyId: string,
    state: EmulatedKeyState,
    deletion?: { deletionDate: number; pendingWindowInDays: number },
  ) => EmulatedKey;
};

export const EMULATOR_ACCOUNT = "000000000000";

export function createKeyStore({
  file,
  region,
}: {
  /** JSON file; undefined keeps keys in memory only. */
  file?: string | undefined;
  region: string;
}): KeyStore {
  let state: StoreFile = { version: 1, keys: [], aliases: {} };
  if (file && existsSync(file)) state = JSON.parse(readFileSync(file, "utf8")) as StoreFile;

  // Write-then-rename so a crash never leaves a half-written key file.
  const save = () => {
    if (!file) return;
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
    renameSync(tmp, file);
  };
  const arnOf = (keyId: string) => `arn:aws:kms:${region}:${EMULATOR_ACCOUNT}:key/${keyId}`;
  const aliasPrefix = `arn:aws:kms:${region}:${EMULATOR_ACCOUNT}:`;
  // A key whose deletion date has passed is gone, as in KMS, and its aliases with it.
  const purge = () => {
    const now = Date.now() / 1000;
    const gone = state.keys.filter(
      (k) => k.keyState === "PendingDeletion" && (k.deletionDate ?? Infinity) <= now,
    );
    if (gone.length === 0) return;
    state.keys = state.keys.filter((k) => !gone.includes(k));
    for (const [alias, target] of Object.entries(state.aliases))
      if (gone.some((k) => k.keyId === target)) delete state.aliases[alias];
    save();
  };

  return {
    create({ keyUsage, description }) {
      const keyId = randomUUID();
      const key: EmulatedKey = {
        keyId,
        arn: arnOf(keyId),
        keySpec: "ECC_SECG_P256K1",
        keyUsage,
        description,
        creationDate: Math.floor(Date.now() / 1000),
        secretKey: bytesToHex(secp256k1.utils.randomSecretKey()).slice(2),
      };
      state.keys.push(key);
      save();
      return key;
    },
    resolve(id) {
      purge();
      // Only an alias ARN loses its prefix; a key ARN is matched whole below (stripped, it left
      // `key/<id>`, which matched no key: a key configured by its ARN was "not found").
      let keyId = id;
      if (id.startsWith(`${aliasPrefix}alias/`)) keyId = id.slice(aliasPrefix.length);
      if (keyId.startsWith("alias/")) {
        const target = state.aliases[keyId];
        if (!target) return undefined;
        keyId = target;
      }
      return state.keys.find((k) => k.keyId === keyId || k.arn === keyId);
    },
    list: () => {
      purge();
      return [...state.keys];
    },
    aliases: () => {
      purge();
      return Object.entries(state.aliases).map(([aliasName, targetKeyId]) => ({
        aliasName,
        targetKeyId,
      }));
    },
    setAlias(aliasName, keyId, mode) {
      if (mode === "create" && state.aliases[aliasName]) throw new Error("exists");
      if (mode === "update" && !state.aliases[aliasName]) throw new Error("missing");
      state.aliases[aliasName] = keyId;
      save();
    },
    deleteAlias(aliasName) {
      if (!state.aliases[aliasName]) return false;
      delete state.aliases[aliasName];
      save();
      return true;
    },
    setState(keyId, keyState, deletion) {
      const key = state.keys.find((k) => k.keyId === keyId);
      if (!key) throw new Error(`no key ${keyId}`);
      key.keyState = keyState;
      if (deletion) {
        key.deletionDate = deletion.deletionDate;
        key.pendingWindowInDays = deletion.pendingWindowInDays;
      } else {
        delete key.deletionDate;
        delete key.pendingWindowInDays;
      }
      save();
      return key;
    },
  };
}
