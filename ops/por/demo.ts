/**
 * The demo's proof-of-reserves step (ops/demo.ts calls it at the end, after a clean
 * reconciliation): stop the service, deploy the ReservesAttestor from the hot wallet (a direct
 * deploy needs the signer idle), start the service again, attest the clean run's block through the
 * signer, fetch a customer's proof from the API and verify it against the on-chain event with the
 * same code as `custody-node por verify`.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toHex, zeroAddress } from "viem";
import { createApiKey } from "../../api/apiKeys.js";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { ROLE_NAMES } from "../../foundation/roles.js";
import { createAttestor } from "../../ledger/attest/attest.js";
import { deployReservesAttestor } from "../../ledger/attest/deploy.js";
import { attestationStatus } from "../../ledger/attest/status.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { createKmsAccount, createKmsClient } from "../../signer/kmsAccount.js";
import type { PreparedCustody } from "../devstack/custody.js";
import { waitFor } from "../devstack/wait.js";
import { type Service, startService } from "../start.js";
import { runPorVerify } from "./cli.js";

export async function proofOfReservesDemo({
  config,
  chain,
  prepared,
  kmsUrl,
  service,
  say,
}: {
  config: Config;
  chain: ChainConfig;
  prepared: PreparedCustody;
  kmsUrl: string;
  /** The running service: stopped here, and a new one returned. */
  service: Service;
  say: (msg: string) => void;
}): Promise<Service> {
  await service.stop();
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 4 });
  const kms = createKmsClient({
    region: config.env.AWS_REGION,
    endpoint: kmsUrl,
    emulator: config.env.KMS_EMULATOR,
  });
  const dir = mkdtempSync(path.join(tmpdir(), "demo-por-"));
  let restarted: Service | undefined;
  try {
    const account = await createKmsAccount({ kms, keyId: prepared.keyId });
    const adapter = createEvmAdapter(chain, { common });
    const { contract } = await deployReservesAttestor({
      common,
      pool,
      chain,
      client: adapter.client,
      account,
      sendRawTransaction: adapter.sendRawTransaction,
    });
    say(
      `proof of reserves: ReservesAttestor ${contract.address} deployed (attester: the hot wallet, gas booked)`,
    );
    restarted = await startService(prepared.config, { roles: [...ROLE_NAMES] });
    const attestor = createAttestor({
      common,
      pool,
      sender: { requestTransaction, getTxOutcomes },
      chains: adapterPerChain(common),
    });
    // The reconciliation ran at the confirmation rule's block; an attestation waits until the
    // indexer publishes that block final (the finality rule: the reorg window on local chains).
    let waited = false;
    const tick = await waitFor(
      "the reconciled block to be final for attestation",
      async () => {
        const t = await attestor.tick(chain, { everyBlocks: 1 });
        if (!("skipped" in t) || t.skipped !== "not_final") return t;
        if (!waited) say(`waiting for a final block to attest: ${t.detail}`);
        waited = true;
        return undefined;
      },
      { timeoutMs: 120_000, everyMs: 1_000 },
    );
    if (!("runId" in tick) || tick.attested.length === 0)
      throw new Error(`nothing attested: ${"detail" in tick ? tick.detail : "no asset due"}`);
    const native = tick.attested.find((a) => a.token === zeroAddress) ?? tick.attested[0]!;
    say(
      `attesting block ${native.block} (reconciliation run ${tick.runId}, no open break): reserves ${native.reserves} wei, liabilities ${native.liabilities} wei over ${native.leafCount} customers, root ${native.liabilitiesRoot.slice(0, 18)}…`,
    );
    const txHash = await waitFor(
      "the attestation mined and confirmed",
      async () => {
        await attestor.settle(chain);
        const a = await attestationStatus(pool, native.id);
        if (a?.status === "failed") throw new Error("the attestation transaction failed");
        return a?.status === "confirmed" ? a.txHash! : undefined;
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    say(`Attested event in tx ${txHash} (sent by the signer, its gas booked as a fee)`);
    // `por verify --rpc` takes only an Attested event in a block the node has finalized (a reorg
    // can still take a newer one out). anvil's finalized block trails its head by 64 blocks (two
    // epochs of 32 slots): the demo mines them on its local chain rather than wait a minute.
    const eventBlock = (await adapter.client.getTransactionReceipt({ hash: txHash })).blockNumber;
    say(
      `mining blocks on the local chain until the node's finalized block reaches the event's (${eventBlock})`,
    );
    await waitFor(
      "the Attested event's block final on the node",
      async () => {
        const finalized = (await adapter.client.getBlock({ blockTag: "finalized" })).number;
        if (finalized >= eventBlock) return true;
        await adapter.client.request({
          method: "anvil_mine" as never,
          params: [toHex(eventBlock - finalized)] as never,
        });
        return undefined;
      },
      { timeoutMs: 30_000, everyMs: 200 },
    );
    const { plaintext } = await createApiKey(pool, {
      owner: "demo-customer-support",
      scopes: ["ledger:read"],
    });
    const res = await fetch(
      `${restarted.url}/v1/customers/alice/liabilities-proof?asset=${chain.chainId}:${zeroAddress}`,
      { headers: { authorization: `Bearer ${plaintext}` } },
    );
    if (!res.ok) throw new Error(`liabilities-proof answered ${res.status}: ${await res.text()}`);
    const file = path.join(dir, "alice-proof.json");
    writeFileSync(file, await res.text());
    say(
      `alice's proof from GET /v1/customers/alice/liabilities-proof saved; custody-node por verify ${path.basename(file)} --rpc ${chain.rpcUrls[0]} --contract ${contract.address}:`,
    );
    const verdict = await runPorVerify(file, {
      rpc: chain.rpcUrls[0]!,
      contract: contract.address,
    });
    for (const line of verdict.out.split("\n")) say(`  ${line}`);
    if (verdict.code !== 0) throw new Error("alice's proof did not verify");
    return restarted;
  } catch (error) {
    await restarted?.stop();
    throw error;
  } finally {
    kms.destroy();
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  }
}
