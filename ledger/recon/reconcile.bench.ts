/**
 * Reconciliation benchmark: the matching core over 1,000,000 chain facts and their ledger entries
 * (every 1,000th deposit left uncredited and every 1,000th credited twice, so breaks are found),
 * then an incremental run over one block of 10,000 transfers against Postgres.
 */
import { figure, machineLine } from "../../ops/bench/machine.js";
import { matchFactsToEntries } from "./match.js";
import type { ChainFact, CustodyKind, LedgerEntry } from "./types.js";

const N = 1_000_000;
const ETH = "31337:0x0000000000000000000000000000000000000000";
const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, "0")}`;

function buildWorkload(n: number) {
  const custody = new Map<string, CustodyKind>();
  for (let i = 0; i < 10_000; i++) custody.set(hex(i + 1, 40), "deposit");
  const facts: ChainFact[] = new Array(n);
  const entries: LedgerEntry[] = [];
  for (let i = 0; i < n; i++) {
    const txHash = hex(i + 1, 64);
    const to = hex((i % 10_000) + 1, 40);
    const amount = BigInt(1_000_000 + i);
    facts[i] = {
      id: i + 1,
      blockNumber: Math.floor(i / 100),
      txHash,
      position: "log:0",
      kind: "erc20",
      assetId: ETH,
      from: hex(0xeeee, 40),
      to,
      amount,
      status: "confirmed",
    };
    if (i % 1000 === 7) continue;
    const e: LedgerEntry = {
      seq: entries.length + 1,
      id: `t${i}`,
      kind: "deposit",
      assetId: ETH,
      debit: "custody:deposits",
      credit: `user:${i % 10_000}`,
      amount,
      // a separate string, as rows read from pg are: its hash is not shared with the fact's
      txHash: hex(i + 1, 64),
      position: "log:0",
      reversesId: null,
    };
    entries.push(e);
    if (i % 1000 === 11) entries.push({ ...e, seq: entries.length + 1, id: `t${i}b` });
  }
  return { facts, entries, custody };
}

async function main() {
  console.log(
    `workload: match ${N.toLocaleString("en")} ERC-20 deposit facts against ${N.toLocaleString("en")} ledger entries (0.1% uncredited, 0.1% credited twice)`,
  );
  console.log(machineLine());
  const input = buildWorkload(N);
  const times: number[] = [];
  let breaks = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    const r = matchFactsToEntries(input);
    times.push(performance.now() - t0);
    breaks = r.breaks.length;
  }
  figure("match 1,000,000 facts (best of 3)", Math.min(...times), "ms");
  figure("match 1,000,000 facts (median of 3)", times.sort((a, b) => a - b)[1]!, "ms");
  figure("breaks found", breaks, "breaks");
}

await main();
