/**
 * For the console's browser tests that need the whole service: a test context with one anvil chain
 * (2 confirmations), the KMS emulator, a funded hot wallet with the factory deployed from it and the
 * demo approval policy (2-of-N above the threshold), every role started, chromium launched, and a
 * fetch helper for /v1 with a key. One `cleanup` stops it all.
 */
import type { Page } from "playwright-core";
import { ROLE_NAMES } from "../../../foundation/roles.js";
import { type PreparedCustody, prepareTestCustody } from "../../../ops/e2e/setup.js";
import { type Service, startService } from "../../../ops/start.js";
import { createTestContext, type TestContext } from "../../../ops/testing/context.js";
import { type KmsEmulator, startKmsEmulator } from "../../../signer/kms-emulator/server.js";
import { createApiKey, type Scope } from "../../apiKeys.js";
import { type ConsoleBrowser, launchConsoleBrowser } from "./browser.js";

export type ApiAnswer = { status: number; type: string; body: Record<string, unknown> };

export type ConsoleService = {
  ctx: TestContext;
  prepared: PreparedCustody;
  service: Service;
  url: string;
  browser: ConsoleBrowser;
  /** A new API key (plaintext) for `owner` with `scopes`. */
  key: (owner: string, scopes: Scope[]) => Promise<string>;
  /** A /v1 request over HTTP with `key`; POSTs get a fresh Idempotency-Key. */
  api: (key: string, method: "GET" | "POST", path: string, body?: object) => Promise<ApiAnswer>;
  /** JSON-RPC to the chain's anvil. */
  rpc: (method: string, params?: unknown[]) => Promise<unknown>;
  cleanup: () => Promise<void>;
};

export async function startConsoleService(): Promise<ConsoleService> {
  const ctx = await createTestContext({
    chains: [
      { chainId: 31337, key: "local-a", config: { confirmations: { kind: "blocks", blocks: 2 } } },
    ],
  });
  let kms: KmsEmulator | undefined;
  let service: Service | undefined;
  let browser: ConsoleBrowser | undefined;
  const cleanup = async () => {
    await browser?.close();
    await service?.stop();
    await kms?.stop();
    await ctx.cleanup();
  };
  try {
    kms = await startKmsEmulator();
    const chain = ctx.config.chains[0]!;
    const prepared = await prepareTestCustody(ctx, kms);
    service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
    const url = service.url;
    browser = await launchConsoleBrowser(url);
    let n = 0;
    return {
      ctx,
      prepared,
      service,
      url,
      browser,
      key: async (owner, scopes) => (await createApiKey(ctx.db.pool, { owner, scopes })).plaintext,
      async api(key, method, path, body) {
        const res = await fetch(`${url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${key}`,
            ...(body ? { "content-type": "application/json" } : {}),
            ...(method === "POST" ? { "idempotency-key": `console-test-${++n}` } : {}),
          },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        return {
          status: res.status,
          type: res.headers.get("content-type") ?? "",
          body: (await res.json()) as Record<string, unknown>,
        };
      },
      async rpc(method, params = []) {
        const res = await fetch(chain.rpcUrls[0]!, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
        });
        return ((await res.json()) as { result?: unknown }).result;
      },
      cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** The CSRF token of a signed-in page (every page's sign-out form carries it). */
export const csrfOf = (page: Page) =>
  page.locator('form[action="/console/sign-out"] input[name=_csrf]').inputValue();
