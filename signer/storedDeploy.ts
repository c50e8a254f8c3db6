/**
 * A hot wallet's contract deploy from the CLI (`custody-node contracts deploy`, `por deploy`)
 * follows the signer's rules (DESIGN, principle 6): its nonce is taken holding the wallet's lease,
 * its signed bytes are stored with that nonce (custody.hot_wallet_deploys, migration 0110) before
 * they are sent, and only those bytes are ever sent again. The deploy is followed until its block
 * is final (the chain's finality rule), holding the lease, before the caller records the contract.
 * A run killed after sending and before the contract was recorded (or stopped while waiting) is
 * followed by the next run: it finds the stored deploy, follows it (sending the same bytes again
 * while the nonce is unused) and records that contract, so no second contract is deployed and its
 * gas is booked once (bookDeployGas is idempotent by transaction). Only when its nonce was used by
 * another transaction at a final block is the stored deploy `dropped` and a new one signed.
 * A stored deploy priced out of the market is replaced at its nonce with raised fees
 * (replaceStoredDeploy) by whichever holds the wallet's lease: this command's follower while it
 * runs, the signer's gap stage (broadcaster/gaps.ts) otherwise; so too, with a fresh gas estimate,
 * one refused "intrinsic gas too low" on a chain whose gas carries the L1 cost (regasRefusal: the
 * L1 price rose since its estimate; its first send refused so does not fail the command, whose
 * follower re-signs it). Every hash it replaced is kept
 * (earlier_tx_hashes, migration 0113): bytes a node took before may still mine, so the deploy is
 * followed by a receipt of any of its hashes, and the contract recorded (its gas booked) from
 * whichever mined.
 * A signer started meanwhile gives a live stored deploy's nonce to no request and sends its stored
 * bytes when no node has them (broadcaster/gaps.ts): the wallet never waits behind it.
 *
 * A deploy ends (recorded, or `reverted`) only where one node shows its block together with the
 * block the finality rule counts from (chainView.underHeight/onTagChain, as the signer's tracker):
 * never from a head alone, which one bogus answer may put far above the chain. On a halted chain
 * (docs/chain-halts.md) nothing new leaves the hot wallet: a new deploy, or a stored one no node
 * has taken yet (`signed`), is refused (SIGNER_CHAIN_HALTED); a sent one is followed as before.
 * A halt opened while the command runs holds bytes no node has taken the same way (haltHolding),
 * read again right before their first send: a new deploy's bytes, signed (KMS) after the start's
 * read, are then stored and followed, sent once an operator resumes the chain.
 */
import {
  type Account,
  type Address,
  formatTransactionReceipt,
  getAddress,
  type Hex,
  keccak256,
  type PublicClient,
  parseTransaction,
  type RpcTransactionReceipt,
  type TransactionSerializable,
  toHex,
} from "viem";
import {
  type DeployFees,
  type DeploySender,
  type SentDeploy,
  signDeploy,
} from "../chains/contracts/sendDeploy.js";
import { type ChainConfig, feePaid, finalityRule, type RpcClient } from "../chains/index.js";
import { headOfAll } from "../chains/rpc.js";
import type { Common } from "../foundation/common.js";
import type { Logger } from "../foundation/logger.js";
import { type ChainHalt, openHalt, readFinalized } from "../indexers/index.js";
import { type ChainView, createChainView, heightMeeting } from "./broadcaster/chainView.js";
import type { CrashPoint } from "./broadcaster/crashPoints.js";
import { regasRefusal } from "./broadcaster/regas.js";
import { ChainHaltedDeployError, LeaseLostError } from "./errors.js";
import { bumpFees, estimateFees, type Fees, feesOf, withFees } from "./fees.js";
import { gasLimitFor } from "./gas.js";
import { acquireLease, type Lease, leaseKey } from "./lease.js";
import { classifyNodeError, errorText } from "./nodeErrors.js";
import { storedNextNonce } from "./requests.js";

type StoredDeploy = {
  id: string;
  name: string;
  fromAddress: string;
  nonce: number;
  hash: Hex;
  raw: Hex;
  address: Address;
  status: "signed" | "broadcast";
  /** Hashes of the deploy's bytes before `hash`'s (replaceStoredDeploy), oldest first. */
  earlier: Hex[];
  /** When a node first took its bytes (null: none yet, as far as any run could tell). */
  broadcastAt: Date | null;
};

/**
 * A `DeploySender` for the CLI. The wallet's lease is taken at the first send and handed to
 * `onLease`: the caller releases it once the contract is recorded.
 */
export function storedDeploySender({
  common,
  databaseUrl,
  chain,
  client,
  rpc,
  account,
  sendRawTransaction,
  getFinalizedBlock,
  onLease,
  crash = () => {},
  pollMs = Math.min(1000, chain.blockTimeMs),
}: {
  common: Common;
  databaseUrl: string;
  chain: ChainConfig;
  client: PublicClient;
  /** The chain's endpoints (the adapter's): a deploy's block is shown final on one of them. */
  rpc: RpcClient;
  account: Account;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
  /** The node's `finalized` block (the adapter's), for chains whose finality rule is the tag. */
  getFinalizedBlock: () => Promise<{ number: bigint; hash: string } | null>;
  onLease: (lease: Lease) => void;
  crash?: (point: CrashPoint) => void;
  pollMs?: number;
}): DeploySender {
  const log = common.logger.child({ component: "deploy", chain_id: chain.chainId });
  const from = getAddress(account.address);
  const chainView = createChainView({
    chain,
    from,
    rpc,
    getFinalizedBlock,
    logger: log,
    registry: common.metrics.registry,
  });
  return async ({ name, data, onSent }) => {
    const lease = await takeDeployLease({ databaseUrl, chain, address: from });
    onLease(lease);
    let deploy = await liveDeploy(lease, chain.chainId, name);
    if (deploy && deploy.fromAddress !== from.toLowerCase())
      throw new Error(
        `a ${name} deploy from ${getAddress(deploy.fromAddress)} (tx ${deploy.hash}, nonce ${deploy.nonce}) is stored on chain ${chain.key}: run with that hot wallet's key (--key) to follow it`,
      );
    if (deploy) {
      log.info({
        msg: "following the stored deploy",
        name,
        tx_hash: deploy.hash,
        nonce: deploy.nonce,
      });
      const mined = await receiptOfAny(rpc, deploy);
      const latest = await client.getTransactionCount({ address: from, blockTag: "latest" });
      if (!mined && latest > deploy.nonce) {
        const used = await usedElsewhere({ chain, client, getFinalizedBlock, lease }, deploy);
        if (used === "unknown")
          throw new Error(
            `the stored ${deployNamed(deploy)} on chain ${chain.key} has no receipt on the node, and its nonce is used but not yet at a final block: run again once that block is final`,
          );
        if (used === "dropped") {
          log.warn({
            msg: "stored deploy dropped: its nonce was used by another transaction at a final block",
            name,
            tx_hash: deploy.hash,
            nonce: deploy.nonce,
          });
          deploy = undefined;
        }
      }
    }
    // Nothing new leaves a hot wallet on a halted chain: neither a new deploy nor stored bytes no
    // node has taken yet. One already sent is followed (only finishing it: the same bytes).
    const halt = await haltHolding(lease, chain.chainId, deploy?.status === "broadcast");
    if (halt) throw new ChainHaltedDeployError(chain, halt);
    if (!deploy) {
      const { nonce, head } = await freshDeployNonce(lease, rpc, chain, from);
      // With the chain's margin, as every send of the signer: on a chain whose gas carries the L1
      // cost (Arbitrum), a rise between the estimate and the block is then absorbed, not refused
      // (re-signed: replaceStoredDeploy's regas) or, once accepted, run out of gas on chain. Its
      // fees are the signer's market (signer/fees.ts) at the head its nonce was read at, as a
      // withdrawal's are at its wallet's head: a legacy chain's eth_gasPrice names no block, and
      // the first endpoint, behind the chain, priced gas from its own old blocks (the deploy
      // signed below the base fee, no block including it until replaced).
      const signed = await signDeploy({
        chain,
        client,
        account,
        data,
        nonce,
        market: await deployMarket(rpc, client, chain, head, chainView),
        gasLimit: (estimate) => gasLimitFor(estimate, chain, data),
      });
      deploy = await lease.transaction(async () => {
        // The nonce is taken with the signed bytes: none of the signer's requests may hold it.
        if ((await storedNextNonce(lease, chain.chainId, from.toLowerCase())) > BigInt(nonce))
          throw new Error(`nonce ${nonce} of ${from} was taken by the signer meanwhile: run again`);
        const { rows } = await lease.query<{ id: string }>(
          `INSERT INTO custody.hot_wallet_deploys
             (chain_id, name, from_address, nonce, tx_hash, raw_tx, contract_address)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
          [
            chain.chainId,
            name,
            from.toLowerCase(),
            nonce,
            signed.hash.toLowerCase(),
            signed.raw.toLowerCase(),
            signed.address.toLowerCase(),
          ],
        );
        return {
          id: rows[0]!.id,
          name,
          fromAddress: from.toLowerCase(),
          nonce,
          hash: signed.hash,
          raw: signed.raw,
          address: signed.address,
          status: "signed" as const,
          earlier: [],
          broadcastAt: null,
        };
      });
      crash("deploy_after_commit");
      // The start's halt read came before the KMS signature: a halt opened since holds these
      // bytes, stored and `signed`, as the follower holds them (heldByHalt: sent after the resume).
      if (!(await haltHolding(lease, chain.chainId, false))) {
        try {
          await send(lease, deploy, sendRawTransaction);
        } catch (error) {
          // The L1 price rose since the estimate (a chain whose gas carries it): the follower
          // sends the bytes again and, refused again, re-signs them with a fresh estimate.
          if (!regasRefusal(chain, classifyNodeError(error))) throw error;
          log.warn({
            msg: "deploy refused for gas (the L1 price rose since its estimate): its follower re-estimates it",
            name,
            tx_hash: deploy.hash,
            err: errorText(error),
          });
        }
      }
    }
    onSent?.(deploy.hash);
    const follow = {
      chain,
      client,
      sign: async (tx: TransactionSerializable) => {
        if (!account.signTransaction)
          throw new Error("the hot wallet account cannot sign transactions");
        return account.signTransaction(tx);
      },
      chainView,
      rpc,
      // At the best head the follower's poll asked every endpoint for (all of them again only
      // when none answered).
      market: async () =>
        estimateFees(client, chain, rpc.bestHead() ?? (await headOfAll(rpc)), chainView.gasPriceAt),
      getFinalizedBlock,
      lease,
      sendRawTransaction,
      log,
      pollMs,
    };
    return followUntilFinal(follow, deploy);
  };
}

/**
 * The chain's open halt when it keeps a deploy's bytes from the nodes: on a halted chain nothing
 * new leaves the hot wallet, and bytes no node has taken yet would be new (the signer's rule for a
 * request's bytes, broadcaster/halt.ts). Bytes a node took only finish what is out: never held.
 * The command's start and its follower ask this, one rule for both.
 */
async function haltHolding(
  lease: Lease,
  chainId: number,
  taken: boolean,
): Promise<ChainHalt | null> {
  return taken ? null : openHalt(lease, chainId);
}

/**
 * The deploy as a message names it: its current bytes' hash and, after a replacement, the hashes
 * of the bytes they replaced (any of them may still mine).
 */
function deployNamed(
  deploy: Pick<StoredDeploy, "name" | "hash" | "nonce" | "address" | "earlier">,
) {
  const replacing = deploy.earlier.length > 0 ? `; replacing ${deploy.earlier.join(", ")}` : "";
  return `${deploy.name} deploy ${deploy.hash} (nonce ${deploy.nonce}, contract ${deploy.address}${replacing})`;
}

/**
 * Replace a priced-out stored deploy's bytes (a node refuses them as underpriced, or holds them
 * unmined past the chain's bump interval) with the same creation at the same nonce, fees raised
 * (bumpFees: the replacement minimum or the market, never above the chain's cap), as a request's
 * attempt is bumped. The one code for it: the signer's gap stage (broadcaster/gaps.ts) and the
 * deploy command's follower (followUntilFinal) both call it. The new bytes are stored, and the hash
 * they replace kept (earlier_tx_hashes: bytes a node took may still mine, and any of them creates
 * the same contract), in one statement holding the lease, before they are sent; only while the row
 * still holds the bytes read. Nothing (undefined) on a halted chain (nothing new leaves the hot
 * wallet), when fees cannot be read, the cap leaves no room (`onCapped`, also told when it clamped
 * the new fees), KMS fails, or the row changed: the caller sends the stored bytes as they are.
 *
 * With `regas` (bytes refused "intrinsic gas too low" on a chain whose gas carries the L1 cost:
 * regasRefusal) the creation is estimated again for `regas.from` at the node's latest block, with
 * the chain's margin (gasLimitFor), and signed with that larger limit: the L1 price rose since its
 * estimate, and the same bytes would be refused for as long as it stays up while every later nonce
 * of the wallet waits behind them. Fees are raised as above when the cap leaves room, else kept.
 * Nothing when the estimate fails or is no higher than the refused limit (the node that estimated
 * does not see the price the refusing one does): the stored bytes go out as they are.
 */
export async function replaceStoredDeploy(
  {
    chain,
    client,
    lease,
    sign,
    log,
    onCapped,
    market: marketNow = () => estimateFees(client, chain),
  }: {
    chain: Pick<
      ChainConfig,
      "chainId" | "feeModel" | "maxFeePerGas" | "gasLimitMarginBps" | "gasLimitFloor"
    >;
    client: PublicClient;
    lease: Lease;
    sign: (tx: TransactionSerializable) => Promise<Hex>;
    log: Logger;
    onCapped: () => void;
    /**
     * The market the fees are raised to (signer/fees.ts estimateFees at the caller's best head,
     * asked of nodes at or past it; the answering node's `latest` when absent).
     */
    market?: () => Promise<Fees>;
  },
  deploy: Pick<StoredDeploy, "id" | "name" | "nonce" | "hash" | "raw">,
  regas?: { from: Address },
): Promise<{ hash: Hex; raw: Hex } | undefined> {
  const tx = parseTransaction(deploy.raw);
  const previous = feesOf(tx);
  if (previous === undefined || tx.gas === undefined || tx.to) {
    // Not bytes signDeploy makes: nothing here may guess how to sign them again.
    log.warn({
      msg: "stored deploy not replaced: its bytes are not a 1559/legacy creation",
      name: deploy.name,
      tx_hash: deploy.hash,
    });
    return undefined;
  }
  if (await openHalt(lease, chain.chainId)) {
    log.warn({
      msg: "stored deploy not replaced: the chain is halted",
      name: deploy.name,
      tx_hash: deploy.hash,
    });
    return undefined;
  }
  let market: Fees;
  try {
    market = await marketNow();
  } catch (error) {
    log.warn({ msg: "fees not known, stored deploy not replaced", name: deploy.name, err: error });
    return undefined;
  }
  const result = bumpFees(previous, market, chain.maxFeePerGas);
  if (result.capped) onCapped();
  let gas = tx.gas;
  if (regas) {
    const creation = { data: tx.data ?? "0x", value: tx.value ?? 0n, gas: tx.gas };
    const fresh = await regasLimit({ chain, client, log }, deploy, creation, regas.from);
    if (fresh === undefined) return undefined;
    gas = fresh;
  } else if (!result.replace) return undefined;
  // A task that lost the lease signs nothing: a standby may own this nonce now.
  if (!lease.isHeld()) throw new LeaseLostError(lease.key);
  let raw: Hex;
  try {
    // A contract creation: no `to`.
    raw = await sign(
      withFees(
        {
          chainId: chain.chainId,
          nonce: deploy.nonce,
          value: tx.value ?? 0n,
          data: tx.data ?? "0x",
          gas,
        },
        result.replace ? result.fees : previous,
      ),
    );
  } catch (error) {
    log.warn({
      msg: "KMS signing of a stored deploy's replacement failed; retried later",
      err: error,
    });
    return undefined;
  }
  const hash = keccak256(raw);
  const { rows } = await lease.transaction(() =>
    lease.query(
      `UPDATE custody.hot_wallet_deploys
          SET tx_hash = $3, raw_tx = $4, earlier_tx_hashes = array_append(earlier_tx_hashes, tx_hash)
        WHERE id = $1 AND tx_hash = $2 AND status IN ('signed', 'broadcast') RETURNING id`,
      [deploy.id, deploy.hash.toLowerCase(), hash.toLowerCase(), raw.toLowerCase()],
    ),
  );
  if (rows.length === 0) return undefined;
  log.warn({
    msg: regas
      ? "stored deploy refused for gas (the L1 price rose): re-signed at its nonce with a fresh estimate"
      : "stored deploy priced out: replaced at its nonce with raised fees",
    name: deploy.name,
    nonce: String(deploy.nonce),
    replaced_tx_hash: deploy.hash,
    tx_hash: hash,
    capped: result.capped,
    ...(regas ? { gas_limit: String(gas), replaced_gas_limit: String(tx.gas) } : {}),
  });
  return { hash, raw };
}

/** The creation's gas estimated again for `from` with the chain's margin, when above the stored limit. */
async function regasLimit(
  {
    chain,
    client,
    log,
  }: {
    chain: Pick<ChainConfig, "chainId" | "gasLimitMarginBps" | "gasLimitFloor">;
    client: PublicClient;
    log: Logger;
  },
  deploy: Pick<StoredDeploy, "name" | "hash">,
  tx: { data: Hex; value: bigint; gas: bigint },
  from: Address,
): Promise<bigint | undefined> {
  const { data } = tx;
  let estimate: bigint;
  try {
    estimate = await client.estimateGas({ account: from, data, value: tx.value });
  } catch (error) {
    log.warn({
      msg: "stored deploy refused for gas, and its gas could not be estimated again: not re-signed",
      name: deploy.name,
      tx_hash: deploy.hash,
      err: errorText(error),
    });
    return undefined;
  }
  const limit = gasLimitFor(estimate, chain, data);
  if (limit > tx.gas) return limit;
  log.warn({
    msg: "stored deploy refused for gas, and a fresh estimate is not above its limit: not re-signed",
    name: deploy.name,
    tx_hash: deploy.hash,
    gas_limit: String(tx.gas),
    estimate: String(estimate),
  });
  return undefined;
}

/** The longest a deploy being followed goes without a log line saying it still waits. */
const PROGRESS_LOG_MS = 30_000;

type Follow = {
  chain: ChainConfig;
  client: PublicClient;
  /** Signs a priced-out deploy's replacement (the hot wallet's key). */
  sign: (tx: TransactionSerializable) => Promise<Hex>;
  chainView: Pick<ChainView, "underHeight" | "onTagChain">;
  /** The chain's endpoints: receipts and counts asked of a node at the best head first. */
  rpc: RpcClient;
  /** A replacement's market: the signer's fees at the best head every endpoint was asked. */
  market: () => Promise<Fees>;
  getFinalizedBlock: () => Promise<{ number: bigint; hash: string } | null>;
  lease: Lease;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
  log: Logger;
  pollMs: number;
};

/**
 * Follow the deploy until its block is final (the chain's finality rule) and still our chain's
 * block at that height: only then is the contract recorded, deposit addresses derived from it and
 * the wallet's lease released. A reorg that takes the deploy out before that leaves its nonce
 * unused: the same bytes are sent again while no node holds them (a signer started after a
 * recorded-but-unmined deploy would give its nonce to a withdrawal, and the contract's address,
 * with every deposit address derived from it, could never be deployed again). Bytes priced out
 * of the market (a node refuses them as underpriced, or holds them unmined past the chain's bump
 * interval) are replaced at the nonce with raised fees (replaceStoredDeploy, the signer's rule):
 * this run holds the lease, so no signer can do it meanwhile. A chain halted meanwhile keeps bytes
 * no node has taken from the nodes, as at the command's start (haltHolding): they are followed (if
 * they mine anyway, the contract is recorded as usual) and sent once an operator resumes the chain.
 * Its errors name the bytes it follows then (deployNamed): a replacement's, and those it replaced.
 */
async function followUntilFinal(f: Follow, stored: StoredDeploy): Promise<SentDeploy> {
  const { chain, client, log } = f;
  const from = getAddress(stored.fromAddress);
  let deploy = stored;
  // Whether a node took bytes of this deploy, and when bytes were last given to a node: held
  // unmined a bump interval after that, they are priced out (as the gap stage reads it).
  let taken = deploy.status === "broadcast";
  let sentAt = deploy.broadcastAt?.getTime() ?? Date.now();
  const sendNow = async (what: string) => {
    // Counted from the attempt, taken or not: a refused replacement is not replaced again at once.
    sentAt = Date.now();
    try {
      await send(f.lease, deploy, f.sendRawTransaction);
      taken = true;
      return undefined;
    } catch (error) {
      log.warn({ msg: `${what} refused`, tx_hash: deploy.hash, err: errorText(error) });
      return error;
    }
  };
  // The halt keeping bytes no node has taken from the nodes: told once per halt, and at its end.
  let heldBy: string | undefined;
  const heldByHalt = async () => {
    const halt = await haltHolding(f.lease, chain.chainId, taken);
    if (halt) {
      if (heldBy !== halt.id)
        log.warn({
          msg: "chain halted: the deploy's bytes no node has taken are not sent until an operator resumes it",
          name: deploy.name,
          nonce: deploy.nonce,
          tx_hash: deploy.hash,
          halted_since: halt.haltedAt.toISOString(),
          reason: halt.reason,
        });
      heldBy = halt.id;
      return true;
    }
    if (heldBy !== undefined)
      log.info({ msg: "chain resumed: the deploy's bytes are sent", name: deploy.name });
    heldBy = undefined;
    return false;
  };
  let waiting: bigint | undefined;
  let progressAt = Date.now();
  try {
    for (;;) {
      if (Date.now() - progressAt >= PROGRESS_LOG_MS) {
        // A deploy can wait a long time (finality, a full pool): say it is alive, at most this often.
        progressAt = Date.now();
        const head = await client.getBlockNumber().catch(() => null);
        log.info({
          msg: "deploy waiting for final",
          name: deploy.name,
          nonce: deploy.nonce,
          tx_hash: deploy.hash,
          earlier_tx_hashes: deploy.earlier,
          head: head === null ? null : String(head),
          block_number: waiting === undefined ? null : String(waiting),
        });
      }
      // Every endpoint's head first (one eth_blockNumber each a poll): which is behind is only
      // known from a head read since it fell behind.
      await f.rpc.askEveryHead();
      const receipt = await receiptOfAny(f.rpc, deploy);
      if (receipt) {
        // The bytes that mined: the row's, or ones it replaced (gaps.ts) that a node had taken.
        const hash = receipt.transactionHash.toLowerCase() as Hex;
        // Mined, so out, though a run killed after sending could not say so: a node took it.
        await markBroadcast(f.lease, deploy);
        taken = true;
        const final = await finalHeight(f);
        if (final !== null && receipt.blockNumber <= final && (await shownFinal(f, receipt))) {
          // A receipt without its status, or a success without the contract's address (a node or
          // proxy dropping fields), is not a revert: read as one, the next run would deploy a second
          // contract. Read it again.
          const whole =
            receipt.status === "reverted" ||
            (receipt.status === "success" && Boolean(receipt.contractAddress));
          if (!whole)
            log.warn({
              msg: "deploy receipt without its status or contract address: read again",
              name: deploy.name,
              tx_hash: hash,
            });
          else {
            if (receipt.status !== "success" || !receipt.contractAddress) {
              // Final: it can never create the contract. The next run signs a new deploy.
              await end(f.lease, deploy, "reverted", receipt.blockNumber);
              throw new Error(
                `${deploy.name} deploy ${hash} reverted (block ${receipt.blockNumber}, final); its gas (${feePaid(receipt)} wei) is not booked: book it with custody-node treasury deploy-gas --chain ${chain.key} --tx ${hash} --wallet ${from} --by <you> --reason <why>; a new run signs a new deploy`,
              );
            }
            return { hash, receipt, address: getAddress(receipt.contractAddress) };
          }
        }
        if (waiting !== receipt.blockNumber) {
          waiting = receipt.blockNumber;
          log.info({
            msg: "deploy mined, waiting until its block is final",
            name: deploy.name,
            tx_hash: hash,
            block_number: String(receipt.blockNumber),
          });
        }
      } else {
        // One node's counts, a node at the best head first: a first endpoint behind the chain
        // counts the deploy's mined nonce unused, and its bytes went out again every poll (each
        // refused "nonce too low" or "already known", two warn lines) until it caught up.
        const [latest, pending] = (
          await f.rpc.batch<Hex>(
            [
              { method: "eth_getTransactionCount", params: [from, "latest"] },
              { method: "eth_getTransactionCount", params: [from, "pending"] },
            ],
            { preferBestHead: true },
          )
        ).map(Number) as [number, number];
        if (latest <= deploy.nonce && pending <= deploy.nonce) {
          // Its nonce is unused and nothing of ours waits at it: these bytes (only these) go out
          // again; not while the chain is halted and no node has taken them yet (heldByHalt).
          if (!(await heldByHalt())) {
            log.warn({ msg: "deploy not mined and not pending: sent again", tx_hash: deploy.hash });
            const refused = await sendNow("deploy resend");
            const cls = refused === undefined ? undefined : classifyNodeError(refused);
            const regas = regasRefusal(chain, cls);
            if (cls === "underpriced" || regas) {
              // Refused for its fees: replaced with raised ones and sent. Refused for gas on a
              // chain whose gas carries the L1 cost: re-signed with a fresh estimate and sent.
              const replaced = await replaceDeploy(f, deploy, regas ? from : undefined);
              if (replaced !== deploy) {
                deploy = replaced;
                // A halt opened while KMS signed the replacement holds it as well.
                if (!(await heldByHalt())) await sendNow("deploy replacement");
              }
            }
          }
        } else if (latest <= deploy.nonce) {
          // A node holds something at the nonce: wait; but bytes of ours taken and not mined within
          // the bump interval are priced out: replaced (at the cap, or without fees known, the
          // stored bytes are sent again as they are).
          if (taken && Date.now() - sentAt >= chain.bumpIntervalMs) {
            deploy = await replaceDeploy(f, deploy);
            await sendNow("deploy replacement");
          }
        } else if (latest > deploy.nonce && (await usedElsewhere(f, deploy)) === "dropped") {
          throw new Error(
            `its nonce was used by another transaction of ${from} at a final block (is the key used elsewhere?): run the command again to sign a new deploy`,
          );
        }
      }
      await new Promise((r) => setTimeout(r, f.pollMs));
    }
  } catch (error) {
    throw new Error(`${deployNamed(deploy)}: ${errorText(error)}`, { cause: error });
  }
}

/** The deploy with its bytes replaced (replaceStoredDeploy), or as it is when they were not. */
async function replaceDeploy(
  f: Follow,
  deploy: StoredDeploy,
  regasFrom?: Address,
): Promise<StoredDeploy> {
  const replaced = await replaceStoredDeploy(
    {
      chain: f.chain,
      client: f.client,
      lease: f.lease,
      sign: f.sign,
      log: f.log,
      market: f.market,
      onCapped: () =>
        f.log.warn({
          msg: "the deploy's replacement fees reach the chain's fee cap (maxFeePerGas)",
          name: deploy.name,
          tx_hash: deploy.hash,
          cap: f.chain.maxFeePerGas.toString(),
        }),
    },
    deploy,
    regasFrom && { from: regasFrom },
  );
  if (!replaced) return deploy;
  return { ...deploy, ...replaced, earlier: [...deploy.earlier, deploy.hash] };
}

/**
 * The receipt of the deploy's bytes that mined, if the node has one: its stored bytes', or those
 * of bytes it replaced (newest first). At most one of them can mine (one nonce).
 */
async function receiptOfAny(rpc: RpcClient, deploy: StoredDeploy) {
  for (const hash of [deploy.hash, ...[...deploy.earlier].reverse()]) {
    // Asked first of a node at the best head: a first endpoint behind the deploy's block has no
    // receipt of it yet (no evidence of anything), and the follower took that for "not mined".
    const raw = await rpc
      .request<RpcTransactionReceipt | null>("eth_getTransactionReceipt", [hash], {
        preferBestHead: true,
      })
      .catch(() => null);
    if (raw) return formatTransactionReceipt(raw);
  }
  return null;
}

/** The highest block final by the chain's finality rule (N blocks, or the node's finalized tag). */
async function finalHeight(
  f: Pick<Follow, "chain" | "client" | "getFinalizedBlock">,
): Promise<bigint | null> {
  const rule = finalityRule(f.chain);
  const head = await f.client.getBlockNumber();
  const tag = rule.kind === "finalized" ? await f.getFinalizedBlock() : null;
  return heightMeeting(rule, head, tag?.number ?? null);
}

/**
 * Whether the receipt's block is final on our chain: one node shows it (its hash) together with
 * the block the finality rule counts from, the node's finalized tag's block or the block `blocks`
 * deep from it (chainView.onTagChain/underHeight, as the signer's tracker). The height finalHeight
 * gave came from the head of one answer (maybe a bogus one, far above the chain).
 */
async function shownFinal(
  f: Pick<Follow, "chain" | "chainView" | "getFinalizedBlock">,
  receipt: { blockNumber: bigint; blockHash: Hex },
): Promise<boolean> {
  const rule = finalityRule(f.chain);
  const ours = new Map([[receipt.blockNumber, receipt.blockHash.toLowerCase() as Hex]]);
  if (rule.kind === "finalized") {
    const tag = await f.getFinalizedBlock();
    if (!tag || tag.number < receipt.blockNumber) return false;
    const shown = await f.chainView.onTagChain(
      { number: tag.number, hash: tag.hash.toLowerCase() },
      ours,
    );
    return shown.has(receipt.blockNumber);
  }
  const depth = BigInt(Math.max(1, rule.blocks));
  const shown = await f.chainView.underHeight(receipt.blockNumber + depth - 1n, ours);
  return shown.has(receipt.blockNumber);
}

/** The wallet's lease, asked once: refused while a signer (active or standby) holds it. */
async function takeDeployLease({
  databaseUrl,
  chain,
  address,
}: {
  databaseUrl: string;
  chain: ChainConfig;
  address: Address;
}): Promise<Lease> {
  const lease = await acquireLease({
    databaseUrl,
    key: leaseKey(chain.chainId, address),
    signal: new AbortController().signal,
    once: true,
    applicationName: "custody-node deploy",
  });
  if (!lease) {
    throw new Error(
      `the signer is running for hot wallet ${address} on chain ${chain.key} (it holds the wallet's nonce lease): stop the signer role for this chain, then deploy`,
    );
  }
  return lease;
}

/**
 * The hot wallet's nonces have one owner, the broadcaster (DESIGN, principle 6). A new deploy
 * takes its nonce holding the broadcaster's lease, and only when nothing of the wallet's is open:
 * every nonce the signer stored is mined at latest, no other stored deploy is at or above the
 * node's count, and the node's pool holds no transaction of the wallet's. Otherwise it is refused,
 * saying what to do, and nothing is sent: a deploy at the pending nonce beside a running signer,
 * or at a nonce the signer stored but has not sent yet, would take a withdrawal's nonce (its bytes
 * refused "nonce too low", then receipt_unknown and needs_review: a customer's money held until an
 * operator acts). A stored deploy whose final block a deep reorg undid (its nonce unused again, as
 * a node at or above that block counts) is told first, with what to do: a reverted one's stored
 * bytes are sent again by the signer (broadcaster/gaps.ts), which then mines the later nonces; a
 * dropped one's nonce needs a person (the signer's later nonces wait behind it for ever).
 *
 * The counts and the head are one node's, in one batch, asked of a node at the best head every
 * endpoint was asked: a first endpoint behind the chain counts the wallet's newest transactions
 * unused (its `latest` is an older block), and the deploy was refused, blaming signer
 * transactions "not mined yet" that were. No node at the best head answering: refused as that.
 */
async function freshDeployNonce(
  lease: Lease,
  rpc: RpcClient,
  chain: ChainConfig,
  from: Address,
): Promise<{ nonce: number; head: bigint }> {
  const storedNext = Number(await storedNextNonce(lease, chain.chainId, from.toLowerCase()));
  await rpc.askEveryHead();
  const [latestHex, pendingHex, headHex] = await rpc.batch<Hex>(
    [
      { method: "eth_getTransactionCount", params: [from, "latest"] },
      { method: "eth_getTransactionCount", params: [from, "pending"] },
      { method: "eth_blockNumber", params: [] },
    ],
    { preferBestHead: true },
  );
  const [latest, pending, head] = [Number(latestHex), Number(pendingHex), BigInt(headHex!)];
  const best = rpc.bestHead();
  if (best !== null && head < best)
    throw new Error(
      `no node of chain ${chain.key} answered at the best head seen (block ${best}; the node that answered is at block ${head}): the wallet's nonce there is not known; deploy once the nodes have caught up`,
    );
  const held = await storedDeployFrom(lease, chain.chainId, from, latest, head);
  const at = held
    ? `hot wallet ${from} on chain ${chain.key} has a stored ${held.name} deploy at nonce ${held.nonce}`
    : "";
  // A stored deploy that ended at a final block the node has reached, counting its nonce unused:
  // told first, as the signer's later nonces wait behind it. A reverted one's stored bytes mined
  // there (the only ones meant for it): the signer sends them again (broadcaster/gaps.ts). A
  // dropped one's nonce was used by a transaction not custody's: a person decides what fills it.
  const undone = held?.undone
    ? `${at} (tx ${held.tx_hash}) that ended ${held.status} at final block ${held.ended_block_number}, but the node, at block ${head}, counts that nonce unused (nonce count ${latest}): a deep reorg accepted at the chain's resume undid that block, and every later transaction of the wallet waits behind it`
    : undefined;
  if (held?.status === "reverted" && undone)
    throw new Error(
      `${undone}: the signer sends that deploy's stored bytes again (the only ones meant for that nonce; nothing is re-signed): run the signer until that nonce and the wallet's later ones are mined, stop it, then deploy`,
    );
  if (undone)
    throw new Error(
      `${undone}; another transaction of the wallet had used that nonce, and nothing of custody's uses it again: a person decides the transaction that fills it (runbook SignerNeedsHuman), then deploy once that nonce is used at a final block`,
    );
  if (storedNext > latest) {
    throw new Error(
      `hot wallet ${from} on chain ${chain.key} has signer transactions not mined yet (nonces ${latest} to ${storedNext - 1}): run the signer until they are mined, stop it, then deploy`,
    );
  }
  // A stored deploy (another contract's: this one's live deploy is followed, never signed anew)
  // at a nonce the node counts unused holds it (live: its bytes not mined yet) or used it at a
  // final block the node is behind (reverted, dropped): signed there, this deploy would break the
  // one-deploy-per-nonce index (a raw duplicate-key error) or be refused "nonce too low".
  if (held) {
    throw new Error(
      held.status === "signed" || held.status === "broadcast"
        ? `${at} (${held.status}, tx ${held.tx_hash}) not mined yet: run its deploy command again (custody-node contracts deploy for ForwarderFactory, custody-node por deploy for ReservesAttestor; --chain ${chain.key}) to follow it until its contract is recorded, then deploy`
        : `${at} (${held.status}, tx ${held.tx_hash}: its nonce used at a final block) that the node counts unused (nonce count ${latest}): the node is behind; deploy once it has caught up`,
    );
  }
  if (pending > latest) {
    throw new Error(
      `the node's pool holds a transaction from hot wallet ${from} on chain ${chain.key} (nonce ${latest}; an earlier deploy may still mine): wait until it is mined, then deploy`,
    );
  }
  return { nonce: latest, head };
}

/**
 * A new deploy's fees (the signer's market, signer/fees.ts) and base fee, both at `head` (the best
 * head its nonce was read at), asked of nodes at or past it.
 */
async function deployMarket(
  rpc: RpcClient,
  client: PublicClient,
  chain: ChainConfig,
  head: bigint,
  chainView: Pick<ChainView, "gasPriceAt">,
): Promise<{ fees: DeployFees; baseFee: bigint }> {
  const [market, block] = await Promise.all([
    estimateFees(client, chain, head, chainView.gasPriceAt),
    rpc.request<{ baseFeePerGas?: Hex } | null>("eth_getBlockByNumber", [toHex(head), false], {
      atLeast: head,
    }),
  ]);
  if (!block)
    throw new Error(
      `no node of chain ${chain.key} at block ${head} answered that block: the deploy's fees there are not known; run again`,
    );
  // Fees carry their fields by model (DeployFees; signDeploy sets the type from the chain's).
  return { fees: market, baseFee: BigInt(block.baseFeePerGas ?? 0) };
}

/** A stored deploy holding a nonce a new deploy would take (int8 columns as pg's text). */
type HeldNonce = {
  name: string;
  nonce: string;
  status: string;
  tx_hash: Hex;
  ended_block_number: string | null;
  undone: boolean;
};

/**
 * A stored deploy of the wallet at or above `nonce`, whatever its status: one whose end a node at
 * `head` shows undone first (endedUndone), then a live one (the one to follow), else the highest.
 */
async function storedDeployFrom(
  lease: Lease,
  chainId: number,
  from: Address,
  nonce: number,
  head: bigint,
): Promise<HeldNonce | undefined> {
  const { rows } = await lease.query<HeldNonce>(
    `SELECT name, nonce::text, status, tx_hash, ended_block_number::text,
            ${endedUndone("$4")} AS undone
       FROM custody.hot_wallet_deploys
      WHERE chain_id = $1 AND from_address = $2 AND nonce >= $3
      ORDER BY undone DESC, status IN ('signed', 'broadcast') DESC, nonce DESC LIMIT 1`,
    [chainId, from.toLowerCase(), nonce, head.toString()],
  );
  return rows[0];
}

/**
 * SQL: the stored deploy row ended (reverted, dropped) at a final block that a node whose head is
 * the SQL expression `head` has reached, while it counts the deploy's nonce unused: a deep reorg
 * accepted at the chain's resume took that block away (docs/chain-halts.md). Below that block the
 * node is only behind it; a row ended before migration 0119 has no block: taken as behind.
 */
export const endedUndone = (head: string) =>
  `(status IN ('reverted', 'dropped') AND COALESCE(ended_block_number <= ${head}, false))`;

async function liveDeploy(
  lease: Lease,
  chainId: number,
  name: string,
): Promise<StoredDeploy | undefined> {
  const { rows } = await lease.query<{
    id: string;
    name: string;
    from_address: string;
    nonce: string;
    tx_hash: Hex;
    raw_tx: Hex;
    contract_address: string;
    status: "signed" | "broadcast";
    earlier_tx_hashes: Hex[];
    broadcast_at: Date | null;
  }>(
    `SELECT id, name, from_address, nonce::text, tx_hash, raw_tx, contract_address, status,
            earlier_tx_hashes, broadcast_at
       FROM custody.hot_wallet_deploys
      WHERE chain_id = $1 AND name = $2 AND status IN ('signed', 'broadcast')`,
    [chainId, name],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    id: r.id,
    name: r.name,
    fromAddress: r.from_address,
    nonce: Number(r.nonce),
    hash: r.tx_hash,
    raw: r.raw_tx,
    address: getAddress(r.contract_address),
    status: r.status,
    earlier: r.earlier_tx_hashes,
    broadcastAt: r.broadcast_at,
  };
}

/**
 * Send the stored bytes. A refusal throws, except "already known" (the node holds these bytes); the
 * bytes stay stored either way, and what the chain does with their nonce decides, never a refusal.
 */
async function send(
  lease: Lease,
  deploy: StoredDeploy,
  sendRawTransaction: (raw: Hex) => Promise<Hex>,
): Promise<void> {
  try {
    await sendRawTransaction(deploy.raw);
  } catch (error) {
    if (classifyNodeError(error) !== "already_known") throw error;
  }
  await markBroadcast(lease, deploy);
}

async function markBroadcast(lease: Lease, deploy: StoredDeploy): Promise<void> {
  await lease.query(
    `UPDATE custody.hot_wallet_deploys SET status = 'broadcast', broadcast_at = now()
      WHERE id = $1 AND status = 'signed'`,
    [deploy.id],
  );
}

/**
 * Whether a stored deploy whose nonce is used at latest, with no receipt on the node, can never
 * mine: `dropped` only when its nonce is used at the chain's final block (the indexer's published
 * one, read by its hash; before there is one, the finality rule's height) and that block has no
 * code at the contract's address (only these bytes can create a contract there; it is
 * then marked dropped). `mined` when the code is there (its receipt is late); `unknown` when the
 * final height does not cover the nonce yet. Missing data is never evidence.
 */
async function usedElsewhere(
  f: Pick<Follow, "chain" | "client" | "getFinalizedBlock" | "lease">,
  deploy: StoredDeploy,
): Promise<"dropped" | "mined" | "unknown"> {
  const { client } = f;
  const from = getAddress(deploy.fromAddress);
  // Our final block, when the indexer has published one: the count and the code are read at its
  // HASH (EIP-1898), so only a node that has our block answers them. A node of another network
  // with our chain id (a misconfigured URL) has no block with that hash: its error is no answer
  // ("unknown"), never its count; and no extra call. Before the indexer publishes one (a deploy
  // before the first ingest): the height the finality rule gives from a node's head, as before,
  // from a node not shown to be on our chain.
  const published = await readFinalized(f.lease, f.chain.chainId);
  const ourFinal = (published?.hash ?? null) as Hex | null;
  const final = ourFinal === null ? await finalHeight(f) : null;
  if (ourFinal === null && final === null) return "unknown";
  const at = ourFinal !== null ? { blockHash: ourFinal } : (`0x${final!.toString(16)}` as Hex);
  let code: Hex;
  try {
    const countAtFinal = BigInt(
      await client.request({ method: "eth_getTransactionCount", params: [from, at] }),
    );
    if (countAtFinal <= deploy.nonce) return "unknown";
    code = await client.request({ method: "eth_getCode", params: [deploy.address, at] });
  } catch (error) {
    // A node without our final block answers an error: missing data, never evidence.
    if (ourFinal !== null) return "unknown";
    throw error;
  }
  if (code && code !== "0x") return "mined";
  await end(f.lease, deploy, "dropped", published?.number ?? final!);
  return "dropped";
}

/**
 * A stored deploy that can never create its contract is no longer live. `block`: the final block
 * that said so (its receipt's, or the one its nonce was read used at): a node at or above it that
 * counts the nonce unused is not behind it, a deep reorg took it away (broadcaster/gaps.ts).
 */
async function end(
  lease: Lease,
  deploy: StoredDeploy,
  status: "reverted" | "dropped",
  block: bigint,
): Promise<void> {
  await lease.query(
    `UPDATE custody.hot_wallet_deploys SET status = $2, ended_at = now(), ended_block_number = $3
      WHERE id = $1`,
    [deploy.id, status, block.toString()],
  );
}
