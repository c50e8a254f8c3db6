/**
 * A listed token's config against its contract on the chain (chains/tokenCheck.ts, ops/start.ts).
 * Every amount the console and the reports show in token units (and the treasury form parses) goes
 * through the configured `decimals`: a USDC listed with 18 shows a 1,000,000 USDC withdrawal to
 * its approvers as 0.000001 USDC. A token address without code (a typo) is a token whose deposits
 * are never seen. So the service checks each listed token of its chains when it starts: the node's
 * answer that contradicts the config refuses the start, naming the field; a node that does not
 * answer is no evidence either way: the service starts, /readyz fails `tokens:<chain>` ("not
 * checked yet") and the check is retried until the node answers.
 */
import { createServer, type Server } from "node:http";
import { type Address, getContractAddress } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import type { Config } from "../foundation/config.js";
import { anvilRpc, freshAddress } from "../indexers/testing/chain.js";
import { createLedger } from "../ledger/index.js";
import { deployTestContract } from "../signer/sweeps/testing/feeToken.js";
import { migrate } from "./migrate.js";
import { type Service, startService } from "./start.js";
import { createTestContext, type TestContext } from "./testing/context.js";
import { chainCli } from "./testing/process.js";
import { waitFor } from "./testing/wait.js";

/** anvil dev account 5 deploys the 6-decimals token at nonce 0. */
const DEPLOYER: Address = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";
const USDC: Address = getContractAddress({ from: DEPLOYER, nonce: 0n });
const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract SixDecimals {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);
    function decimals() external pure returns (uint8) { return 6; }
    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}`;

/** anvil dev account 6 deploys a token without decimals() (optional in ERC-20) at nonce 0. */
const PLAIN_DEPLOYER: Address = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";
const PLAIN: Address = getContractAddress({ from: PLAIN_DEPLOYER, nonce: 0n });
const PLAIN_SOURCE = SOURCE.replace("SixDecimals", "NoDecimals").replace(
  "function decimals() external pure returns (uint8) { return 6; }",
  "",
);

let ctx: TestContext;
let chain: ChainConfig;
const started: Service[] = [];

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  await migrate(ctx.config.env.DATABASE_URL);
  chain = ctx.config.chains[0]!;
  await deployTestContract(anvilRpc(chain.rpcUrls[0]!), {
    contract: "SixDecimals",
    source: SOURCE,
    deployer: DEPLOYER,
    expected: USDC,
  });
  await deployTestContract(anvilRpc(chain.rpcUrls[0]!), {
    contract: "NoDecimals",
    source: PLAIN_SOURCE,
    deployer: PLAIN_DEPLOYER,
    expected: PLAIN,
  });
}, 120_000);

afterAll(async () => {
  for (const s of started) await s.stop();
  await ctx?.cleanup();
});

const configWith = (token: { address: Address; decimals: number }, rpcUrls = chain.rpcUrls) =>
  ({
    ...ctx.config,
    chains: [{ ...chain, rpcUrls, tokens: [{ ...token, symbol: "USDC" }] }],
  }) as Config;

/** The start's error, or undefined when it started (stopped again after the test). */
async function startError(config: Config): Promise<Error | undefined> {
  try {
    started.push(await startService(config, { roles: ["api"] }));
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

type Ready = { status: number; checks: Record<string, { ok: boolean; detail?: string }> };
async function readyz(service: Service): Promise<Ready> {
  const res = await fetch(`${service.url}/readyz`);
  const body = (await res.json()) as { checks?: Ready["checks"] };
  return { status: res.status, checks: body.checks ?? {} };
}

it("a 6-decimals token listed with 18: the start is refused, naming the field and both values", async () => {
  const error = await startError(configWith({ address: USDC, decimals: 18 }));
  expect(error?.message).toMatch(/chains\[0\]\.tokens\[0\]\.decimals/);
  expect(error?.message).toMatch(/18.*decimals\(\) of .* is 6/);
  expect((error as { code?: string } | undefined)?.code).toBe("CONFIG_INVALID");
});

it("a token address without code (a typo): the start is refused, naming the address field", async () => {
  const typo = freshAddress(77);
  const error = await startError(configWith({ address: typo, decimals: 6 }));
  expect(error?.message).toMatch(/chains\[0\]\.tokens\[0\]\.address/);
  expect(error?.message).toMatch(/no contract/);
});

it("listed as the contract says: it starts and /readyz passes tokens:<chain>", async () => {
  const error = await startError(configWith({ address: USDC, decimals: 6 }));
  expect(error).toBeUndefined();
  const service = started.at(-1)!;
  const ready = await waitFor("tokens check to pass", async () => {
    const r = await readyz(service);
    return r.checks[`tokens:${chain.key}`]?.ok ? r : undefined;
  });
  expect(ready.checks[`tokens:${chain.key}`]).toMatchObject({ ok: true });
});

it("a token without decimals() (optional in ERC-20): it starts; tokens:<chain> passes degraded, naming it", async () => {
  const error = await startError(configWith({ address: PLAIN, decimals: 6 }));
  expect(error).toBeUndefined();
  const service = started.at(-1)!;
  const check = await waitFor("tokens check to answer", async () => {
    const r = await readyz(service);
    const c = r.checks[`tokens:${chain.key}`] as
      | { ok: boolean; degraded?: boolean; detail?: string }
      | undefined;
    return c?.ok ? c : undefined;
  });
  expect(check.degraded).toBe(true);
  expect(check.detail).toContain(PLAIN);
});

it("a node that does not answer is no evidence: it starts, tokens:<chain> degraded, and the contradiction is found once the node answers", async () => {
  // The chain's only endpoint: refuses (503) until `open`, then passes requests on to anvil.
  let open = false;
  const upstream = chain.rpcUrls[0]!;
  const proxy: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      if (!open) {
        res.writeHead(503).end("down");
        return;
      }
      void fetch(upstream, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }).then(async (r) => {
        res.writeHead(r.status, { "content-type": "application/json" }).end(await r.text());
      });
    });
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  try {
    const error = await startError(configWith({ address: USDC, decimals: 18 }, [url]));
    expect(error).toBeUndefined();
    const service = started.at(-1)!;
    const down = await readyz(service);
    // Degraded, not failing: an RPC outage must not take an api task out of its load balancer.
    expect(down.checks[`tokens:${chain.key}`]).toMatchObject({ ok: true, degraded: true });
    expect(down.checks[`tokens:${chain.key}`]?.detail).toMatch(/not checked yet/);

    open = true;
    const found = await waitFor(
      "tokens:<chain> to name the decimals field",
      async () => {
        const r = await readyz(service);
        const check = r.checks[`tokens:${chain.key}`];
        return check?.detail?.includes("tokens[0].decimals") ? { r, check } : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(found.r.status).toBe(503);
    expect(found.check.ok).toBe(false);
    expect(found.check.detail).toMatch(/decimals\(\) of .* is 6/);
  } finally {
    await new Promise<void>((r) => proxy.close(() => r()));
  }
}, 90_000);

it("a CLI command that stores the chain's assets (treasury fund) runs the same check: a token listed with wrong decimals is refused naming the field, and the stored decimals stay", async () => {
  // old code: expected 18 to be 6: `treasury fund` wrote the config's decimals over the ones the
  // checked start had stored (the reconciliation report then showed every USDC amount 10^12 off),
  // whatever the chain said, and failed only afterwards on the booking itself.
  const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  try {
    await ledger.ensureAsset({ chainId: chain.chainId, token: USDC, symbol: "USDC", decimals: 6 });
  } finally {
    await ledger.close();
  }
  const stored = async () =>
    (
      await ctx.db.pool.query<{ decimals: number }>(
        "SELECT decimals FROM ledger.assets WHERE chain_id = $1 AND token = $2",
        [chain.chainId, USDC.toLowerCase()],
      )
    ).rows[0]?.decimals;
  const cli = chainCli({
    databaseUrl: ctx.db.url,
    chain,
    entry: { tokens: [{ address: USDC, symbol: "USDC", decimals: 18 }] },
  });
  try {
    const run = await cli.run([
      "treasury",
      "fund",
      "--chain",
      chain.key,
      "--tx",
      `0x${"ab".repeat(32)}`,
      "--wallet",
      freshAddress(78),
      "--by",
      "ops-test",
      "--reason",
      "token check",
    ]);
    expect(await stored()).toBe(6);
    expect(run.code, run.out).not.toBe(0);
    expect(run.out).toMatch(/chains\[0\]\.tokens\[0\]\.decimals/);
    expect(run.out).toMatch(/18.*decimals\(\) of .* is 6/);
  } finally {
    cli.remove();
  }
}, 60_000);
