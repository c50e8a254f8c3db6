/**
 * The `signer` role: one wallet signer per configured hot wallet on the chains this process
 * serves (retiring ones too: they finish what they were given). Several processes may run it; per
 * wallet one holds the lease, the others stand by.
 */
import type { RoleDefinition } from "../foundation/roles.js";
import { checkConfiguredHotWallet, registerHotWallet } from "./hotWalletKeys.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";
import { startKmsKeyStateCheck, type WatchedKmsKey } from "./kmsKeyState.js";
import { startWalletSigner, type WalletSigner } from "./walletSigner.js";

export const signerRole: RoleDefinition = {
  name: "signer",
  description: "broadcaster per hot wallet: nonces, KMS signing, sending, bumping, tracking",
  async start(ctx) {
    const { common } = ctx;
    const env = common.config.env;
    const kms = createKmsClient({
      region: env.AWS_REGION,
      endpoint: env.AWS_ENDPOINT_URL_KMS,
      emulator: env.KMS_EMULATOR,
    });
    const signers: WalletSigner[] = [];
    const keys = new Map<string, WatchedKmsKey>();
    for (const wallet of common.config.hotWallets) {
      const chain = ctx.chains.find((c) => c.key === wallet.chain);
      if (!chain) continue;
      const key = keys.get(wallet.kmsKeyId) ?? {
        keyId: wallet.kmsKeyId,
        chainIds: [],
        addresses: [],
      };
      key.chainIds.push(chain.chainId);
      if (wallet.address) key.addresses.push(wallet.address);
      keys.set(wallet.kmsKeyId, key);
      signers.push(
        startWalletSigner({
          common,
          pool: ctx.pool,
          queues: ctx.queues,
          chain,
          databaseUrl: env.DATABASE_URL,
          account: async () => {
            const account = await createKmsAccount({
              kms,
              keyId: wallet.kmsKeyId,
              registry: common.metrics.registry,
            });
            // The configured address is the key's (the api records new withdrawals with it: a key
            // that signs for another would leave them with no signer; loading it is retried,
            // HotWalletNotServed), and the key is still the one it was (its alias not moved:
            // SIGNER_KMS_KEY_MOVED), before its address is registered: another key's address is
            // no hot wallet of ours (walletSigner.ts refuses it too, and counts the refusal).
            await checkConfiguredHotWallet(ctx.pool, chain.chainId, wallet, account.address);
            // Registered before it can send anything.
            await registerHotWallet(ctx.pool, chain, account.address);
            return account;
          },
        }),
      );
    }
    // Every key's state, idle or not: a key disabled or pending deletion is seen while it can
    // still be enabled or its deletion cancelled, not when a withdrawal first needs it.
    const keyStates = startKmsKeyStateCheck({
      kms,
      pool: ctx.pool,
      metrics: common.metrics,
      logger: common.logger.child({ component: "kms-key-state" }),
      keys: [...keys.values()],
      intervalMs: env.KMS_KEY_CHECK_INTERVAL_S * 1000,
    });
    // Ready once each wallet's KMS key is loaded (active broadcaster or standby both count).
    ctx.health.add({
      name: "signer",
      check: async () => {
        const loading = signers.filter((s) => !s.isLoaded()).length;
        return loading === 0
          ? {
              ok: true,
              detail: `${signers.filter((s) => s.isActive()).length}/${signers.length} wallets active here`,
            }
          : { ok: false, detail: `${loading} hot wallet key(s) not loaded from KMS yet` };
      },
    });
    if (signers.length === 0) {
      common.logger.warn({ msg: "signer role: no hot wallet configured for these chains" });
    }
    return {
      async stop() {
        await Promise.all([...signers.map((s) => s.stop()), keyStates.stop()]);
        kms.destroy();
      },
    };
  },
};
