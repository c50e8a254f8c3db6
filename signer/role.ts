/**
 * The `signer` role: one wallet signer per configured hot wallet on the chains this process
 * serves. Several processes may run it; per wallet one holds the lease, the others stand by.
 */
import type { RoleDefinition } from "../foundation/roles.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";
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
    for (const wallet of common.config.hotWallets) {
      const chain = ctx.chains.find((c) => c.key === wallet.chain);
      if (!chain) continue;
      signers.push(
        startWalletSigner({
          common,
          pool: ctx.pool,
          queues: ctx.queues,
          chain,
          databaseUrl: env.DATABASE_URL,
          account: () =>
            createKmsAccount({ kms, keyId: wallet.kmsKeyId, registry: common.metrics.registry }),
        }),
      );
    }
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
        await Promise.all(signers.map((s) => s.stop()));
        kms.destroy();
      },
    };
  },
};
