/**
 * `custody-node keys create|list|address` (hot-wallet keys in KMS or the emulator, by
 * AWS_ENDPOINT_URL_KMS), `custody-node kms-local` (the emulator, dev/test only) and
 * `custody-node tx-requests review|fail|retry|fill-nonce` (operator decisions the signer never takes
 * alone; audited with who and why) and `tx-requests held` (what a halted chain holds: no decision
 * owed).
 */
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  ListAliasesCommand,
  ListKeysCommand,
} from "@aws-sdk/client-kms";
import type { Command } from "commander";
import { getAddress } from "viem";
import { type ChainConfig, chainSchema } from "../chains/index.js";
import { loadConfig } from "../foundation/config.js";
import { createPool, type Pool } from "../foundation/db.js";
import { DEFAULT_EMULATOR_FILE, startKmsEmulator } from "./kms-emulator/server.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";
import {
  type NonceEvidenceReader,
  nonceEvidenceFromChains,
  nonceUnusedFromChains,
} from "./nonceEvidence.js";
import {
  failTxRequestByOperator,
  fillNonceByOperator,
  listHeldTxRequests,
  listTxRequestsForReview,
  type OperatorDecision,
  type OperatorDecisionResult,
  retryTxRequestByOperator,
} from "./operator.js";

async function withPool<T>(
  fn: (pool: Pool, readEvidence: NonceEvidenceReader, chains: readonly ChainConfig[]) => Promise<T>,
): Promise<T> {
  const config = loadConfig(chainSchema);
  const pool = createPool(config.env.DATABASE_URL, {
    max: 1,
    applicationName: "custody-node signer",
  });
  try {
    return await fn(pool, nonceEvidenceFromChains(config.chains), config.chains);
  } finally {
    await pool.end();
  }
}

function kmsFromConfig() {
  const config = loadConfig(chainSchema);
  return createKmsClient({
    region: config.env.AWS_REGION,
    endpoint: config.env.AWS_ENDPOINT_URL_KMS,
    emulator: config.env.KMS_EMULATOR,
  });
}

export function registerCommands(program: Command): void {
  const keys = program
    .command("keys")
    .description("hot-wallet keys in KMS (or the local emulator when AWS_ENDPOINT_URL_KMS is set)");

  keys
    .command("create")
    .description("create an ECC_SECG_P256K1 signing key and print its id and address")
    .option("--alias <alias>", "also create this alias (alias/...)")
    .option("--description <text>", "key description", "custody-node hot wallet")
    .action(async (opts: { alias?: string; description: string }) => {
      const kms = kmsFromConfig();
      try {
        const out = await kms.send(
          new CreateKeyCommand({
            KeySpec: "ECC_SECG_P256K1",
            KeyUsage: "SIGN_VERIFY",
            Description: opts.description,
          }),
        );
        const keyId = out.KeyMetadata!.KeyId!;
        if (opts.alias) {
          const alias = opts.alias.startsWith("alias/") ? opts.alias : `alias/${opts.alias}`;
          await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId }));
        }
        const account = await createKmsAccount({ kms, keyId });
        console.log(`key ${keyId}${opts.alias ? ` (${opts.alias})` : ""}`);
        console.log(`address ${getAddress(account.address)}`);
      } finally {
        kms.destroy();
      }
    });

  keys
    .command("list")
    .description(
      "list secp256k1 signing keys with their aliases and addresses (a key not enabled: its state, and its deletion date)",
    )
    .action(async () => {
      const kms = kmsFromConfig();
      try {
        const aliases = (await kms.send(new ListAliasesCommand({}))).Aliases ?? [];
        let marker: string | undefined;
        do {
          const page = await kms.send(new ListKeysCommand(marker ? { Marker: marker } : {}));
          for (const k of page.Keys ?? []) {
            const meta = (await kms.send(new DescribeKeyCommand({ KeyId: k.KeyId! }))).KeyMetadata;
            if (meta?.KeySpec !== "ECC_SECG_P256K1" || meta.KeyUsage !== "SIGN_VERIFY") continue;
            const names = aliases.filter((a) => a.TargetKeyId === k.KeyId).map((a) => a.AliasName);
            // A disabled key or one pending deletion has no public key to read (KMS refuses it):
            // shown with its state, not ending the list (runbook KmsKeyNotEnabled).
            const shown =
              meta.KeyState === "Enabled"
                ? getAddress((await createKmsAccount({ kms, keyId: k.KeyId! })).address)
                : `${meta.KeyState}${meta.DeletionDate ? ` (deleted for good at ${meta.DeletionDate.toISOString()})` : ""}`;
            console.log(`${k.KeyId}  ${shown}${names.length ? `  ${names.join(",")}` : ""}`);
          }
          marker = page.Truncated ? page.NextMarker : undefined;
        } while (marker);
      } finally {
        kms.destroy();
      }
    });

  keys
    .command("address")
    .description("print the Ethereum address of a key (id, ARN or alias)")
    .argument("<keyId>")
    .action(async (keyId: string) => {
      const kms = kmsFromConfig();
      try {
        console.log(getAddress((await createKmsAccount({ kms, keyId })).address));
      } finally {
        kms.destroy();
      }
    });

  program
    .command("kms-local")
    .description("run the local KMS emulator (dev and tests only; keys in a JSON file)")
    .option("--host <host>", "listen address (loopback only)", "127.0.0.1")
    .option("--port <port>", "port", "4599")
    .option(
      "--file <path>",
      "key file (default: .dev/kms-keys.json in the working directory)",
      DEFAULT_EMULATOR_FILE,
    )
    .action(async (opts: { host: string; port: string; file: string }) => {
      if (!["127.0.0.1", "localhost", "::1"].includes(opts.host)) {
        throw new Error("kms-local listens on loopback only (it holds private keys in a file)");
      }
      const emulator = await startKmsEmulator({
        host: opts.host,
        port: Number(opts.port),
        file: opts.file,
      });
      console.log(`KMS emulator on ${emulator.url} (keys in ${opts.file})`);
      console.log(`use it with AWS_ENDPOINT_URL_KMS=${emulator.url}`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
      await emulator.stop();
    });

  const requests = program
    .command("tx-requests")
    .description(
      "signer transaction requests waiting for a human: review, fail, retry, fill-nonce (audited); held by a halted chain: held",
    );

  requests
    .command("review")
    .description("list requests in receipt_unknown or needs_review")
    .action(async () => {
      await withPool(async (pool) => {
        for (const r of await listTxRequestsForReview(pool))
          console.log(
            `${r.requestId}\t${r.status}\t${r.reviewReason ?? "-"}\tchain ${r.chainId}\t${r.from}\tnonce ${r.nonce ?? "-"}\t${r.kind} ${r.refId}\tsince ${r.since.toISOString()}`,
          );
      });
    });

  requests
    .command("held")
    .description(
      "list requests a halted chain holds (pending, or signed and taken by no node): they go out by themselves after `chains resume`",
    )
    .action(async () => {
      await withPool(async (pool) => {
        for (const r of await listHeldTxRequests(pool))
          console.log(
            `${r.requestId}\t${r.status}\tchain ${r.chainId}\t${r.from}\tnonce ${r.nonce ?? "-"}\t${r.kind} ${r.refId}\trequested ${r.requestedAt.toISOString()}\thalted since ${r.haltedSince.toISOString()}`,
          );
      });
    });

  const decision =
    (
      verb: string,
      fn: (
        pool: Pool,
        d: OperatorDecision,
        readEvidence: NonceEvidenceReader,
      ) => Promise<OperatorDecisionResult>,
    ) =>
    async (id: string, opts: { by: string; reason: string }) => {
      await withPool(async (pool, readEvidence) => {
        const out = await fn(pool, { requestId: id, ...opts }, readEvidence);
        console.log(
          out.cancelling
            ? `cancelling ${id}: ${out.from} -> ${out.to}, its nonce unused: it fails once the cancel's block is final (by ${opts.by}: ${opts.reason})`
            : `${verb} ${id}: ${out.from} -> ${out.to} (by ${opts.by}: ${opts.reason})`,
        );
      });
    };

  requests
    .command("fail <requestId>")
    .description(
      "fail a receipt_unknown or needs_review request, or a failed one without evidence (no final block, no operator); refused when the chain shows one of its own transactions used its nonce, or cannot tell; when nothing used the nonce, it goes back to broadcast and fails once the signer's cancel of the nonce is final",
    )
    .requiredOption("--by <who>", "the operator deciding")
    .requiredOption("--reason <text>", "why (what was checked on chain)")
    .action(decision("failed", failTxRequestByOperator));

  requests
    .command("retry <requestId>")
    .description(
      "send a needs_review request whose cancel was unsendable (CANCEL_UNSENDABLE) back to broadcast with a fresh cancel budget; refused for any other review reason",
    )
    .requiredOption("--by <who>", "the operator deciding")
    .requiredOption("--reason <text>", "why (what was fixed)")
    .action(decision("retried", retryTxRequestByOperator));

  requests
    .command("fill-nonce")
    .description(
      "fill a hot wallet's nonce that nothing holds (nonce_gap: the key used outside custody, that transaction dropped) with a 0-value transfer of the wallet to itself, signed and followed to final by the signer; refused on a halted chain, for a nonce a request or deploy of ours holds, at or above the wallet's next nonce, and unless every configured node shows it unused (mined and pending) at the best head",
    )
    .requiredOption("--chain <chain>", "the chain's key or chain id")
    .requiredOption("--wallet <address>", "the hot wallet")
    .requiredOption("--nonce <n>", "the nonce to fill")
    .requiredOption("--by <who>", "the operator deciding")
    .requiredOption("--reason <text>", "why (what was checked: who used the key, that it is gone)")
    .action(
      async (opts: {
        chain: string;
        wallet: string;
        nonce: string;
        by: string;
        reason: string;
      }) => {
        await withPool(async (pool, _readEvidence, chains) => {
          const chain = chains.find(
            (c) => c.key === opts.chain || String(c.chainId) === opts.chain,
          );
          if (!chain) throw new Error(`chain ${opts.chain} is not in the configuration`);
          if (!/^[0-9]+$/.test(opts.nonce))
            throw new Error("--nonce must be a non-negative integer");
          const out = await fillNonceByOperator(
            pool,
            {
              chainId: chain.chainId,
              from: opts.wallet,
              nonce: BigInt(opts.nonce),
              by: opts.by,
              reason: opts.reason,
            },
            nonceUnusedFromChains(chains),
          );
          console.log(
            `${out.repeated ? "already filling" : "filling"} nonce ${out.nonce} of ${opts.wallet.toLowerCase()} on chain ${chain.chainId}: request ${out.requestId}; the signer signs it at that nonce and follows it to final (by ${opts.by}: ${opts.reason})`,
          );
        });
      },
    );
}
