/**
 * A registered hot wallet that no configured key signs for (taken out of `hotWallets[]`; its
 * signer no longer runs) with booked value above a ceiling. A cold move for it was held and waited
 * for a signer that never came: the value stayed held in a wallet nothing sends from, and the
 * HotWalletAboveCeiling alert reads a balance only that wallet's signer exports. So no move is
 * requested for it; the excess is a gauge (the ColdMoveNoSigner alert), and the worker logs it,
 * naming the wallet and what to do, once when it begins (or its excess changes) and once when it
 * ends. docs/deploy.md: defund before removing.
 */
import type { Gauge } from "prom-client";
import { zeroAddress } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { HotWalletConfig } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { gaugeOnce } from "../../foundation/metrics.js";

/** custody_cold_move_no_signer, registered once per registry. */
export function noSignerGauge(
  common: Pick<Common, "metrics">,
): Gauge<"chain_id" | "wallet" | "asset"> {
  return gaugeOnce(common.metrics.registry, {
    name: "custody_cold_move_no_signer",
    help: "Value (base units) above the hot ceiling booked to a registered hot wallet that no configured key signs for (removed from hotWallets[]), by chain, wallet and asset: no move to cold is requested for it",
    labelNames: ["chain_id", "wallet", "asset"],
  });
}

/**
 * The hot wallets of `chain` a configured key signs for (lowercase): a `hotWallets[]` entry's
 * `address`, else the address its key had when a signer first loaded it (custody.hot_wallet_keys,
 * pinned before the wallet is registered: signer/hotWalletKeys.ts).
 */
export async function signedHotWallets(
  pool: Pick<Pool, "query">,
  chain: Pick<ChainConfig, "chainId" | "key">,
  hotWallets: readonly HotWalletConfig[],
): Promise<Set<string>> {
  const configured = hotWallets.filter((w) => w.chain === chain.key);
  const signed = new Set(configured.flatMap((w) => (w.address ? [w.address.toLowerCase()] : [])));
  const byKey = configured.filter((w) => !w.address).map((w) => w.kmsKeyId);
  if (byKey.length > 0) {
    const { rows } = await pool.query<{ address: string }>(
      "SELECT address FROM custody.hot_wallet_keys WHERE chain_id = $1 AND key_id = ANY($2::text[])",
      [chain.chainId, byKey],
    );
    for (const r of rows) signed.add(r.address.toLowerCase());
  }
  return signed;
}

export type NoSignerExcess = { wallet: string; asset: string; excess: bigint };

/** Of one chain, per wallet and asset, the excess last logged (createSweeper keeps it across passes). */
export type NoSignerSeen = Map<string, bigint>;

const seenKey = (wallet: string, asset: string) => `${wallet}:${asset}`;

/** The excess of (`wallet`, `asset`) without a signer the last pass reported, if any. */
export function lastNoSigner(
  seen: NoSignerSeen,
  wallet: string,
  asset: string,
): NoSignerExcess | undefined {
  const excess = seen.get(seenKey(wallet, asset));
  return excess === undefined ? undefined : { wallet, asset, excess };
}

/** This pass's excesses of `chain` without a signer: the gauge set, changes logged. */
export function reportNoSigner(
  common: Pick<Common, "metrics" | "logger">,
  chain: Pick<ChainConfig, "chainId" | "key">,
  found: readonly NoSignerExcess[],
  seen: NoSignerSeen,
): void {
  const gauge = noSignerGauge(common);
  const log = common.logger.child({ component: "cold_moves", chain_id: chain.chainId });
  const now = new Set<string>();
  for (const f of found) {
    const key = seenKey(f.wallet, f.asset);
    now.add(key);
    gauge.set(
      { chain_id: String(chain.chainId), wallet: f.wallet, asset: f.asset },
      Number(f.excess),
    );
    if (seen.get(key) === f.excess) continue;
    seen.set(key, f.excess);
    log.error({
      msg: "hot wallet above its ceiling has no configured signer (not in hotWallets[]): no move to cold is requested; give it back its hotWallets[] entry with retiring: true (its signer moves the excess), or move it yourself and book it with custody-node treasury defund",
      wallet: f.wallet,
      asset: f.asset,
      excess: f.excess.toString(),
      command: `custody-node treasury defund --chain ${chain.key} --wallet ${f.wallet}${f.asset === zeroAddress ? "" : ` --token ${f.asset}`} --tx <hash> --by <you> --reason "removed hot wallet"`,
    });
  }
  for (const key of [...seen.keys()]) {
    if (now.has(key)) continue;
    seen.delete(key);
    const [wallet = "", asset = ""] = key.split(":");
    gauge.set({ chain_id: String(chain.chainId), wallet, asset }, 0);
    log.info({
      msg: "hot wallet no longer above its ceiling without a configured signer",
      wallet,
      asset,
    });
  }
}
