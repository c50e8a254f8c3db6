/**
 * Signer throughput: (1) signatures/s through the KMS emulator via @aws-sdk/client-kms (the
 * account's full path: Sign, DER parse, low s, yParity by recovery); (2) withdrawals/s signed,
 * stored and broadcast by one hot wallet's broadcaster on anvil (automine), then mined/confirmed.
 */
import { rmSync } from "node:fs";
import { keccak256, toHex } from "viem";
import { figure, machineLine } from "../ops/bench/machine.js";
import { createTestContext } from "../ops/testing/context.js";
import { freePort, spawnCli } from "../ops/testing/process.js";
import { createSignerHarness, statusCounts, waitFor } from "./testing/harness.js";
import { startWalletSigner } from "./walletSigner.js";

const SIGS = 2000;
const SIG_CONCURRENCY = 16;
const WITHDRAWALS = 1000;
console.log(
  `workload: ${SIGS} KMS signatures (concurrency ${SIG_CONCURRENCY}, emulator in its own process via custody-node kms-local); ` +
    `${WITHDRAWALS} native withdrawals from one hot wallet through the broadcaster on anvil (automine, batch 100, KMS concurrency 16)`,
);
console.log(machineLine());

const ctx = await createTestContext({
  chains: [{ chainId: 31337, config: { confirmations: { kind: "blocks", blocks: 1 } } }],
});
// The emulator runs as its own process (`custody-node kms-local`), as KMS is remote in production.
const port = await freePort();
const emulator = spawnCli(
  ["kms-local", "--port", String(port), "--file", `/tmp/kms-bench-${process.pid}.json`],
  {},
);
await waitFor("emulator", async () => emulator.output().includes("KMS emulator on"), {
  timeoutMs: 60_000,
});
const h = await createSignerHarness(ctx, { kmsEndpoint: `http://127.0.0.1:${port}` });
try {
  // 1. Signatures through the emulator.
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SIG_CONCURRENCY }, async () => {
      while (next < SIGS) {
        const i = next++;
        await h.account.signDigest(keccak256(toHex(`bench ${i}`)));
      }
    }),
  );
  const sigSeconds = (performance.now() - t0) / 1000;
  figure("kms signatures", SIGS / sigSeconds, "signatures/s");

  // 2. Withdrawals signed + broadcast per hot wallet.
  await h.request(WITHDRAWALS, { prefix: "bench" });
  const t1 = performance.now();
  const signer = startWalletSigner({
    common: ctx.common,
    pool: ctx.db.pool,
    queues: ctx.queues,
    chain: ctx.config.chains[0]!,
    account: async () => h.account,
    databaseUrl: ctx.db.url,
    pollMs: 20,
    batchSize: 100,
  });
  await waitFor(
    "all broadcast",
    async () => {
      const c = await statusCounts(ctx);
      return (c.pending ?? 0) + (c.signed ?? 0) === 0;
    },
    { timeoutMs: 600_000, everyMs: 20 },
  );
  const broadcastSeconds = (performance.now() - t1) / 1000;
  await waitFor(
    "all confirmed",
    async () => {
      const c = await statusCounts(ctx);
      if ((c.confirmed ?? 0) < WITHDRAWALS) await h.rpc("evm_mine");
      return c.confirmed === WITHDRAWALS;
    },
    { timeoutMs: 600_000, everyMs: 50 },
  );
  const confirmedSeconds = (performance.now() - t1) / 1000;
  await signer.stop();
  figure(
    "withdrawals signed+stored+broadcast per hot wallet",
    WITHDRAWALS / broadcastSeconds,
    "withdrawals/s",
  );
  figure(
    "withdrawals to confirmed (1 confirmation) per hot wallet",
    WITHDRAWALS / confirmedSeconds,
    "withdrawals/s",
  );
  // A lost or never-promoted send of the lowest nonce (anvil's pool, under these concurrent
  // sends, sometimes) used to freeze the wallet until the 30 s bump: the stall stage's heals.
  const heals = await ctx.common.metrics.registry
    .getSingleMetric("custody_signer_stall_heals_total")
    ?.get();
  for (const action of ["resend", "bump"])
    figure(
      `stalled lowest nonce: ${action === "resend" ? "stored bytes resent" : "bumped early"}`,
      (heals?.values ?? [])
        .filter((v) => v.labels.action === action)
        .reduce((sum, v) => sum + v.value, 0),
      "times",
    );
} finally {
  await h.close();
  await ctx.cleanup();
  emulator.child.kill("SIGTERM");
  await emulator.exited;
  rmSync(`/tmp/kms-bench-${process.pid}.json`, { force: true });
}
process.exit(0);
