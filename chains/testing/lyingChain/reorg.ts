/**
 * Reorg injection on anvil: replace the newest `depth` blocks with a new branch in which each
 * transaction of the old branch is re-mined (the same signed bytes, possibly in a later block),
 * dropped, or replaced by another transaction from the same sender at the same nonce (e.g. the same
 * deposit with a different amount). Done with `anvil_reorg` (the new branch in one call) or
 * `anvil_rollback` followed by re-sending and mining. A marker transaction in the first new block
 * guarantees the branch really differs even when every transaction is kept.
 */
import type { Hex } from "viem";

export type RpcCaller = <T = unknown>(method: string, params?: unknown[]) => Promise<T>;

/** A transaction of the replaced branch. */
export type MinedTx = {
  hash: Hex;
  from: Hex;
  to: Hex | null;
  nonce: bigint;
  value: bigint;
  input: Hex;
  gas: bigint;
  blockNumber: bigint;
};

export type TxFate = "same" | "drop" | "replace";

/** An unsigned request anvil signs with an unlocked dev account. */
export type TxRequestJson = {
  from: Hex;
  to?: Hex;
  value?: Hex;
  data?: Hex;
  gas?: Hex;
  nonce: Hex;
};

export type InjectReorgOptions = {
  depth: number;
  /** Extra empty blocks mined on top of the new branch (it may be longer than the old one). */
  extend?: number;
  method?: "reorg" | "rollback";
  /** Each transaction's fate; a sender whose tx is dropped loses its later txs in the range too. */
  fate: (tx: MinedTx) => TxFate;
  /** The replacing request for a "replace"; null when this tx cannot be replaced (then dropped). */
  replacement?: (tx: MinedTx) => Omit<TxRequestJson, "nonce" | "from"> | null;
  /** Move a kept tx this many blocks later in the new branch (capped; sender order kept). */
  shift?: (tx: MinedTx) => number;
  /**
   * An unlocked account used for nothing but markers: its earlier markers in the range are
   * dropped (not reported) so this reorg's marker can take their nonce.
   */
  marker: { from: Hex; to: Hex };
};

export type ReorgOutcome = {
  depth: number;
  /** First replaced block. */
  fromBlock: bigint;
  oldHead: bigint;
  newHead: bigint;
  kept: Hex[];
  dropped: MinedTx[];
  replaced: { old: MinedTx; replacement: Hex | null }[];
};

const hex = (n: bigint) => `0x${n.toString(16)}` as Hex;

type RawBlockTx = {
  hash: Hex;
  from: Hex;
  to: Hex | null;
  nonce: Hex;
  value: Hex;
  input: Hex;
  gas: Hex;
  blockNumber: Hex;
};

/** A node's refusals of a re-sent transaction whose nonce another transaction already holds. */
const DISPLACED = /replacement transaction underpriced|already known|nonce too low/i;
/**
 * A node's refusal of a re-sent transaction the new branch's base fee has priced out (it rose
 * since the transaction was signed): it is not in the new branch, nor is any later transaction
 * of its sender (their nonces wait behind it).
 */
const PRICED_OUT = /fee per gas less than block base fee|less than (the )?block base fee/i;

export async function injectReorg(
  rpc: RpcCaller,
  options: InjectReorgOptions,
): Promise<ReorgOutcome> {
  const head = BigInt(await rpc<Hex>("eth_blockNumber"));
  const depth = Math.min(options.depth, Number(head) - 1);
  if (depth < 1) throw new Error(`cannot reorg depth ${options.depth} at head ${head}`);
  const base = head - BigInt(depth) + 1n;
  const txs: MinedTx[] = [];
  for (let n = base; n <= head; n++) {
    const block = await rpc<{ transactions: RawBlockTx[] }>("eth_getBlockByNumber", [hex(n), true]);
    for (const t of block.transactions)
      txs.push({
        hash: t.hash,
        from: t.from.toLowerCase() as Hex,
        to: t.to ? (t.to.toLowerCase() as Hex) : null,
        nonce: BigInt(t.nonce),
        value: BigInt(t.value),
        input: t.input,
        gas: BigInt(t.gas),
        blockNumber: BigInt(t.blockNumber),
      });
  }

  const broken = new Set<string>();
  const lastOffset = new Map<string, number>();
  const kept: Hex[] = [];
  const dropped: MinedTx[] = [];
  const replaced: { old: MinedTx; request: TxRequestJson; offset: number }[] = [];
  const pairs: [unknown, number][] = [
    [{ from: options.marker.from, to: options.marker.to, value: "0x1" }, 0],
  ];
  const rawSends: { raw?: Hex; tx?: MinedTx; request?: TxRequestJson; offset: number }[] = [];
  const markerFrom = options.marker.from.toLowerCase();
  for (const tx of txs) {
    // Earlier markers in the range give way to this reorg's marker (same sender, fresh nonce).
    if (tx.from === markerFrom) continue;
    const fate = broken.has(tx.from) ? "drop" : options.fate(tx);
    const natural = Number(tx.blockNumber - base);
    const offset = Math.min(
      depth - 1,
      Math.max(natural + (options.shift?.(tx) ?? 0), lastOffset.get(tx.from) ?? 0),
    );
    if (fate === "same") {
      const raw = await rpc<Hex>("eth_getRawTransactionByHash", [tx.hash]);
      pairs.push([raw, offset]);
      rawSends.push({ raw, tx, offset });
      kept.push(tx.hash);
      lastOffset.set(tx.from, offset);
      continue;
    }
    const other = fate === "replace" ? options.replacement?.(tx) : null;
    if (other) {
      const request: TxRequestJson = { ...other, from: tx.from, nonce: hex(tx.nonce) };
      pairs.push([request, offset]);
      rawSends.push({ request, offset });
      replaced.push({ old: tx, request, offset });
      lastOffset.set(tx.from, offset);
      continue;
    }
    dropped.push(tx);
    broken.add(tx.from);
  }

  const displaced = new Set<Hex>();
  /** Senders one of whose re-sent transactions the base fee priced out (rollback). */
  const pricedOut = new Set<string>();
  if ((options.method ?? "reorg") === "reorg") {
    await rpc("anvil_reorg", [depth, pairs]);
  } else {
    await rpc("anvil_rollback", [depth]);
    await rpc("evm_setAutomine", [false]);
    for (let offset = 0; offset < depth; offset++) {
      if (offset === 0)
        await rpc("eth_sendTransaction", [
          { from: options.marker.from, to: options.marker.to, value: "0x1" },
        ]);
      for (const s of rawSends.filter((x) => x.offset === offset)) {
        if (s.raw && pricedOut.has(s.tx!.from)) displaced.add(s.tx!.hash);
        else if (s.raw)
          await rpc("eth_sendRawTransaction", [s.raw]).catch((error: unknown) => {
            const message = String((error as Error)?.message ?? error);
            // The rollback put the sender's nonce free, and its owner (a signer running beside
            // this) sent another transaction at it first: that one takes its place; this is dropped.
            // Or the base fee rose past what it pays: dropped, and its sender's later ones too.
            if (PRICED_OUT.test(message)) pricedOut.add(s.tx!.from);
            else if (!DISPLACED.test(message)) throw error;
            displaced.add(s.tx!.hash);
          });
        else await rpc("eth_sendTransaction", [s.request]);
      }
      await rpc("evm_mine");
    }
  }
  for (let i = 0; i < (options.extend ?? 0); i++) await rpc("evm_mine");

  // The replacements' hashes: the new branch's tx from the same sender at the same nonce.
  const bySenderNonce = new Map<string, Hex>();
  for (let n = base; n < base + BigInt(depth); n++) {
    const block = await rpc<{ transactions: RawBlockTx[] } | null>("eth_getBlockByNumber", [
      hex(n),
      true,
    ]);
    for (const t of block?.transactions ?? [])
      bySenderNonce.set(`${t.from.toLowerCase()}:${BigInt(t.nonce)}`, t.hash);
  }
  return {
    depth,
    fromBlock: base,
    oldHead: head,
    newHead: BigInt(await rpc<Hex>("eth_blockNumber")),
    kept: kept.filter((h) => !displaced.has(h)),
    dropped: [...dropped, ...txs.filter((t) => displaced.has(t.hash))],
    replaced: replaced.map((r) => ({
      old: r.old,
      replacement: bySenderNonce.get(`${r.old.from}:${r.old.nonce}`) ?? null,
    })),
  };
}
