/** Test plumbing for the signer: an emulator, a funded KMS hot wallet, request helpers. */
import { CreateKeyCommand, type KMSClient } from "@aws-sdk/client-kms";
import { createPublicClient, http, type PublicClient, parseEther, toHex } from "viem";
import { withTransaction } from "../../foundation/db.js";
import type { TestContext } from "../../ops/testing/context.js";
import { type KmsEmulator, startKmsEmulator } from "../kms-emulator/server.js";
import { createKmsAccount, createKmsClient, type KmsAccount } from "../kmsAccount.js";
import { requestTransaction, type TxRequestInput } from "../requests.js";

export const RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

export type SignerHarness = {
  /** Undefined when an external emulator (kmsEndpoint) is used. */
  emulator: KmsEmulator | undefined;
  kmsUrl: string;
  kms: KMSClient;
  keyId: string;
  account: KmsAccount;
  client: PublicClient;
  rpc: <T = unknown>(method: string, params?: unknown[]) => Promise<T>;
  /** Insert n withdrawal-like requests with value base + i (so each is identifiable on chain). */
  request: (n: number, opts?: { prefix?: string; valueBase?: bigint }) => Promise<string[]>;
  /**
   * Insert withdrawals in one transaction (refId = id): from the harness's account to RECIPIENT,
   * 1 wei, unless `fields` (for all) or a request's own fields say otherwise.
   */
  withdraw: (
    requests: string | (string | ({ id: string } & WithdrawalFields))[],
    fields?: WithdrawalFields,
  ) => Promise<void>;
  /** Another hot wallet: a new KMS key (used through `kms`, default the harness's), funded. */
  wallet: (balance?: bigint, kms?: KMSClient) => Promise<KmsAccount>;
  close: () => Promise<void>;
};

export type WithdrawalFields = Partial<
  Pick<TxRequestInput, "from" | "to" | "value" | "data" | "gasLimit">
>;

export async function createSignerHarness(
  ctx: TestContext,
  options: { emulatorFile?: string; kmsEndpoint?: string } = {},
): Promise<SignerHarness> {
  const emulator = options.kmsEndpoint
    ? undefined
    : await startKmsEmulator({ file: options.emulatorFile });
  const kmsUrl = options.kmsEndpoint ?? emulator!.url;
  const kms = createKmsClient({ region: "us-east-1", endpoint: kmsUrl });
  const created = await kms.send(
    new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
  );
  const keyId = created.KeyMetadata!.KeyId!;
  const account = await createKmsAccount({ kms, keyId, registry: ctx.common.metrics.registry });
  const rpcUrl = ctx.config.chains[0]!.rpcUrls[0]!;
  const client = createPublicClient({ cacheTime: 0, transport: http(rpcUrl) }) as PublicClient;
  const rpc = <T>(method: string, params: unknown[] = []) =>
    client.request({ method: method as never, params: params as never }) as Promise<T>;
  await rpc("anvil_setBalance", [account.address, toHex(parseEther("1000"))]);
  const chainId = ctx.config.chains[0]!.chainId;
  return {
    emulator,
    kmsUrl,
    kms,
    keyId,
    account,
    client,
    rpc,
    async request(n, opts = {}) {
      const prefix = opts.prefix ?? "w";
      const base = opts.valueBase ?? 1000n;
      const ids: string[] = [];
      await withTransaction(ctx.db.pool, async (c) => {
        for (let i = 0; i < n; i++) {
          const id = `${prefix}-${i}`;
          await requestTransaction(c, {
            id,
            chainId,
            from: account.address,
            to: RECIPIENT,
            value: base + BigInt(i),
            kind: "withdrawal",
            refId: id,
          });
          ids.push(id);
        }
      });
      return ids;
    },
    async withdraw(requests, fields = {}) {
      await withTransaction(ctx.db.pool, async (c) => {
        for (const r of typeof requests === "string" ? [requests] : requests) {
          const own = typeof r === "string" ? { id: r } : r;
          await requestTransaction(c, {
            chainId,
            from: account.address,
            to: RECIPIENT,
            value: 1n,
            kind: "withdrawal",
            refId: own.id,
            ...fields,
            ...own,
          });
        }
      });
    },
    async wallet(balance = parseEther("10"), through = kms) {
      const key = await kms.send(
        new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
      );
      const wallet = await createKmsAccount({ kms: through, keyId: key.KeyMetadata!.KeyId! });
      await rpc("anvil_setBalance", [wallet.address, toHex(balance)]);
      return wallet;
    },
    async close() {
      kms.destroy();
      await emulator?.stop();
    },
  };
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  { timeoutMs = 60_000, everyMs = 100 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function statusCounts(ctx: TestContext): Promise<Record<string, number>> {
  const { rows } = await ctx.db.pool.query(
    "SELECT status, count(*)::int AS n FROM custody.tx_requests GROUP BY status",
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
