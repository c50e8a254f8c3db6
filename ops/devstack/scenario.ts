/**
 * The custody story through the public API, used by `npm run demo` and the e2e tests: API keys,
 * deposit addresses, deposits from anvil accounts until credited, a withdrawal under the approval
 * threshold, one that needs two approvers, one that is rejected (hold voided), and the balances on
 * both sides at the end. Every step checks what it expects and throws otherwise.
 */
import { formatEther, parseEther, zeroAddress } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { sendTransaction } from "viem/actions";
import { createApiKey } from "../../api/apiKeys.js";
import { type ChainConfig, publicClientFor } from "../../chains/index.js";
import { type PoliciesConfig, policiesSchema } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { getTxOutcomes } from "../../signer/index.js";

/** anvil's public dev mnemonic: its accounts are funded at genesis (never a real key). */
const ANVIL_MNEMONIC = "test test test test test test test test test test test junk";
/** The external address withdrawals go to (anvil dev account 9). */
export const EXTERNAL = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720";

/**
 * The demo's withdrawal policy for each of `chainIds`, parsed by the config schema as a config
 * file's `policies` would be: native withdrawals above 1 ETH need 2 distinct approvers, at most 10
 * ETH per transaction and 20 ETH per 24h. (A served chain's native asset without one has its
 * withdrawals refused, and the service warns so at every start.)
 */
export function demoPolicies(...chainIds: number[]): PoliciesConfig {
  const limit = {
    perTransaction: parseEther("10").toString(),
    rolling24h: parseEther("20").toString(),
    approvalThreshold: parseEther("1").toString(),
  };
  return policiesSchema.parse({
    withdrawals: {
      globalAllowlist: [],
      customerAllowlists: {},
      limits: Object.fromEntries(chainIds.map((id) => [`${id}:${zeroAddress}`, limit])),
      requiredApprovals: 2,
    },
  });
}

type Json = Record<string, unknown> & { [k: string]: unknown };

export type ScenarioResult = {
  withdrawals: { small: Json; approved: Json; rejected: Json };
  balances: Record<string, { posted: string; pending: string; available: string }>;
  external: { before: bigint; after: bigint };
  hotWallet: { before: bigint; after: bigint };
};

export async function runScenario({
  url,
  pool,
  chain,
  hotWallet,
  say = () => {},
  tick = async () => {},
  timeoutMs = 120_000,
}: {
  url: string;
  pool: Pool;
  chain: ChainConfig;
  hotWallet: `0x${string}`;
  say?: (msg: string) => void;
  /** Called while waiting (the test mines a block on an automine anvil). */
  tick?: () => Promise<void>;
  timeoutMs?: number;
}): Promise<ScenarioResult> {
  const client = publicClientFor(chain.rpcUrls[0]!, { cacheTime: 0 });
  let n = 0;

  async function api(
    key: string,
    method: "GET" | "POST",
    path: string,
    body?: object,
    expect = method === "POST" ? [200, 201] : [200],
  ): Promise<Json> {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body ? { "content-type": "application/json" } : {}),
        ...(method === "POST" ? { "idempotency-key": `scenario-${Date.now()}-${++n}` } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as Json;
    if (!expect.includes(res.status))
      throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
    return json;
  }

  async function until<T>(
    what: string,
    fn: () => Promise<T | undefined>,
    explain: () => Promise<unknown> = async () => "",
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what} ${JSON.stringify(await explain())}`);
      await tick();
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  // 1. API keys: the exchange's backend, two treasury operators.
  const mk = async (owner: string, scopes: string[]) =>
    (await createApiKey(pool, { owner, scopes, description: "demo" })).plaintext;
  const backend = await mk("exchange-backend", [
    "deposits:read",
    "deposits:write",
    "withdrawals:write",
    "ledger:read",
  ]);
  const anna = await mk("ops-anna", ["withdrawals:approve"]);
  const ben = await mk("ops-ben", ["withdrawals:approve"]);
  say(
    "API keys created: exchange-backend (deposits, withdrawals, ledger), ops-anna and ops-ben (approvers)",
  );

  // 2. Deposit addresses and deposits.
  const customers = [
    { id: "alice", amount: parseEther("5"), depositor: 1 },
    { id: "bob", amount: parseEther("3"), depositor: 2 },
  ];
  for (const c of customers) {
    const alloc = await api(backend, "POST", `/v1/customers/${c.id}/deposit-addresses`, {
      chain: chain.key,
    });
    const account = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: c.depositor });
    // Signed here with the dev account's key, sent raw (what a wallet client's sendTransaction does).
    const hash = await sendTransaction(client, {
      account,
      chain: null,
      to: alloc.address as `0x${string}`,
      value: c.amount,
    });
    say(
      `${c.id}: deposit address ${alloc.address}; sent ${formatEther(c.amount)} ETH from ${account.address} (tx ${hash.slice(0, 10)}…)`,
    );
  }
  const assetId = `${chain.chainId}:0x0000000000000000000000000000000000000000`;
  const balanceOf = async (customer: string) => {
    const res = await api(backend, "GET", `/v1/customers/${customer}/balances`);
    return (
      res.balances as { assetId: string; posted: string; pending: string; available: string }[]
    ).find((b) => b.assetId === assetId)!;
  };
  for (const c of customers) {
    await until(`${c.id}'s deposit to be credited`, async () =>
      BigInt((await balanceOf(c.id)).available) === c.amount ? true : undefined,
    );
    say(`${c.id}: deposit confirmed and credited, available ${formatEther(c.amount)} ETH`);
  }

  const externalBefore = await client.getBalance({ address: EXTERNAL });
  const hotBefore = await client.getBalance({ address: hotWallet });
  const withdraw = (customer: string, eth: string) =>
    api(backend, "POST", "/v1/withdrawals", {
      customerId: customer,
      chain: chain.key,
      asset: "native",
      to: EXTERNAL,
      amount: parseEther(eth).toString(),
    });

  // 3. Withdrawals: one under the threshold, one needing two approvers, one rejected.
  const small = await withdraw("alice", "0.5");
  say(`alice withdraws 0.5 ETH: ${small.status} (under the 1 ETH approval threshold)`);
  const big = await withdraw("alice", "2");
  say(`alice withdraws 2 ETH: ${big.status}, needs ${big.requiredApprovals} approvals`);
  const afterAnna = await api(anna, "POST", `/v1/withdrawals/${big.id}/approve`, {
    reason: "known customer",
  });
  say(`ops-anna approves: ${afterAnna.status}`);
  const afterBen = await api(ben, "POST", `/v1/withdrawals/${big.id}/approve`, {});
  say(`ops-ben approves: ${afterBen.status}`);
  const bobBefore = await balanceOf("bob");
  const doomed = await withdraw("bob", "1.5");
  const rejected = await api(anna, "POST", `/v1/withdrawals/${doomed.id}/reject`, {
    reason: "destination under review",
  });
  const bobAfter = await balanceOf("bob");
  if (rejected.status !== "rejected" || bobAfter.available !== bobBefore.available)
    throw new Error(`rejection did not restore bob's balance: ${JSON.stringify(bobAfter)}`);
  say(
    `bob withdraws 1.5 ETH: ${doomed.status}; ops-anna rejects: hold voided, bob's available back to ${formatEther(BigInt(bobAfter.available))} ETH`,
  );

  // 4. Wait for the signer to send and the chain to confirm.
  const done: Record<string, Json> = {};
  for (const [name, w] of [
    ["small", small],
    ["approved", big],
  ] as const) {
    done[name] = await until(
      `withdrawal ${String(w.id)} to confirm`,
      async () => {
        const got = await api(backend, "GET", `/v1/withdrawals/${String(w.id)}`);
        if (got.status === "failed") throw new Error(`withdrawal failed: ${JSON.stringify(got)}`);
        // Confirmed, or already final if the chain moved on between two polls.
        return got.status === "confirmed" || got.status === "finalized" ? got : undefined;
      },
      async () => ({
        withdrawal: await api(backend, "GET", `/v1/withdrawals/${String(w.id)}`),
        signer: await getTxOutcomes(pool, { requestIds: [`withdrawal:${String(w.id)}`] }),
      }),
    );
    say(
      `withdrawal ${String(w.id).slice(0, 8)}… confirmed in tx ${String(done[name]!.txHash).slice(0, 10)}…, gas ${done[name]!.fee} wei`,
    );
  }

  const balances: ScenarioResult["balances"] = {};
  for (const c of customers) balances[c.id] = await balanceOf(c.id);
  const result: ScenarioResult = {
    withdrawals: { small: done.small!, approved: done.approved!, rejected },
    balances,
    external: { before: externalBefore, after: await client.getBalance({ address: EXTERNAL }) },
    hotWallet: { before: hotBefore, after: await client.getBalance({ address: hotWallet }) },
  };
  say("summary:");
  for (const [id, b] of Object.entries(balances))
    say(
      `  ledger  ${id.padEnd(6)} posted ${formatEther(BigInt(b.posted))} ETH, held ${formatEther(BigInt(b.pending))}, available ${formatEther(BigInt(b.available))}`,
    );
  say(
    `  chain   ${EXTERNAL} received ${formatEther(result.external.after - result.external.before)} ETH`,
  );
  say(`  chain   hot wallet ${hotWallet}: ${formatEther(result.hotWallet.after)} ETH`);
  return result;
}
