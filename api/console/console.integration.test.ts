/**
 * The operator console in a real browser (Debian's chromium driven by playwright-core) against the
 * whole service on anvil with the KMS emulator: sign in; two distinct approvers approve a withdrawal
 * that then confirms on chain; a third rejects another and the balance comes back; a break is
 * acknowledged then resolved; a key without the scope is refused in the console and the API; a POST
 * without the CSRF token is refused; sign-out ends the session. Screenshots of every page go to
 * .artifacts/console/ (git-ignored).
 */

import { createWalletClient, http, parseEther } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain } from "../../chains/index.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { EXTERNAL } from "../../ops/e2e/scenario.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { SESSION_COOKIE } from "./plugin.js";
import { expectNoHorizontalOverflow, shot, shows } from "./testing/browser.js";
import { type ConsoleService, csrfOf, startConsoleService } from "./testing/service.js";

const ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

let s: ConsoleService;

beforeAll(async () => {
  s = await startConsoleService();
});
afterAll(async () => {
  await s?.cleanup();
});

describe("operator console in chromium", () => {
  it("signs in, approves M-of-N to the chain, rejects, works breaks, refuses scope and CSRF, signs out", async () => {
    const { ctx, prepared, url, api, rpc } = s;
    const chain = ctx.config.chains[0]!;
    const pool = ctx.db.pool;
    const mk = s.key;
    const backend = await mk("exchange-backend", [
      "deposits:read",
      "deposits:write",
      "withdrawals:write",
      "ledger:read",
    ]);
    const anna = await mk("ops-anna", ["withdrawals:approve"]);
    const ben = await mk("ops-ben", ["withdrawals:approve"]);
    const carl = await mk("ops-carl", ["withdrawals:approve"]);
    const admin = await mk("ops-admin", ["admin"]);
    const reader = await mk("ops-reader", ["deposits:read"]);

    // alice deposits 5 ETH and it is credited
    const alloc = await api(backend, "POST", "/v1/customers/alice/deposit-addresses", {
      chain: chain.key,
    });
    expect([200, 201]).toContain(alloc.status);
    const depositor = createWalletClient({
      account: mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 1 }),
      transport: http(chain.rpcUrls[0]),
    });
    await depositor.sendTransaction({
      chain: null,
      to: alloc.body.address as `0x${string}`,
      value: parseEther("5"),
    });
    const available = async () => {
      const r = await api(backend, "GET", "/v1/customers/alice/balances");
      return (r.body.balances as { available: string }[])[0]?.available;
    };
    await waitFor(
      "alice's deposit credited",
      async () => {
        await rpc("evm_mine");
        return (await available()) === parseEther("5").toString();
      },
      { timeoutMs: 90_000, everyMs: 250 },
    );

    const withdraw = async (eth: string) => {
      const r = await api(backend, "POST", "/v1/withdrawals", {
        customerId: "alice",
        chain: chain.key,
        asset: "native",
        to: EXTERNAL,
        amount: parseEther(eth).toString(),
      });
      expect(r.status).toBe(201);
      expect(r.body.status).toBe("pending_approval");
      return String(r.body.id);
    };
    const statusOf = async (id: string) =>
      (
        await pool.query<{ status: string }>("SELECT status FROM api.withdrawals WHERE id = $1", [
          id,
        ])
      ).rows[0]?.status;

    const signIn = (key: string) => s.browser.signIn(key, "/console/withdrawals");

    // 1. two distinct approvers approve in the console; the withdrawal confirms on anvil
    const big = await withdraw("2");
    const a = await signIn(anna);
    const cookies = await a.context.cookies();
    const session = cookies.find((c) => c.name === SESSION_COOKIE)!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
    await a.page.goto(`${url}/console/withdrawals`);
    await shot(a.page, "withdrawals-queue");
    await a.page.getByLabel(`Reason to approve ${big.slice(0, 8)}`).fill("known customer");
    await a.page.getByRole("button", { name: `Approve withdrawal ${big.slice(0, 8)}` }).click();
    await shows(a.page.getByRole("status").first(), "approve recorded");
    expect(await statusOf(big)).toBe("pending_approval");

    // CSRF: the same signed-in browser posting without the form's token is refused, nothing changes
    const forged = await a.page.request.post(`${url}/console/withdrawals/${big}/approve`, {
      form: { reason: "forged" },
    });
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain("CONSOLE_CSRF");
    // and anna approving twice is refused by the API's rule, shown in the console
    await a.page.goto(`${url}/console/withdrawals/${big}`);
    await a.page.getByRole("button", { name: `Approve withdrawal ${big.slice(0, 8)}` }).click();
    await shows(a.page.getByRole("alert"), "ALREADY_DECIDED");

    const b = await signIn(ben);
    await b.page.goto(`${url}/console/withdrawals`);
    await b.page.getByRole("button", { name: `Approve withdrawal ${big.slice(0, 8)}` }).click();
    await shows(b.page.getByRole("status").first(), "approve recorded");
    await waitFor(
      "the approved withdrawal confirmed on anvil",
      async () => {
        await rpc("evm_mine");
        return ["confirmed", "finalized"].includes((await statusOf(big)) ?? "");
      },
      { timeoutMs: 90_000, everyMs: 250 },
    );
    const approvals = await pool.query<{ approver: string }>(
      "SELECT approver FROM api.withdrawal_approvals WHERE withdrawal_id = $1 AND decision = 'approve' ORDER BY approver",
      [big],
    );
    expect(approvals.rows.map((r) => r.approver)).toEqual(["ops-anna", "ops-ben"]);
    await b.page.goto(`${url}/console/withdrawals/${big}`);
    await shows(b.page.getByRole("main"), "withdrawal.confirmed");
    await shows(b.page.getByRole("main"), "2 ETH");
    await shot(b.page, "withdrawal-timeline");

    // 2. a third approver rejects another; alice's available balance is back
    const before = await available();
    const doomed = await withdraw("1.5");
    expect(BigInt((await available())!)).toBe(BigInt(before!) - parseEther("1.5"));
    const c = await signIn(carl);
    await c.page.goto(`${url}/console/withdrawals`);
    await c.page
      .getByLabel(`Reason to reject ${doomed.slice(0, 8)}`)
      .fill("destination under review");
    await c.page.getByRole("button", { name: `Reject withdrawal ${doomed.slice(0, 8)}` }).click();
    await shows(c.page.getByRole("status").first(), "reject recorded");
    expect(await statusOf(doomed)).toBe("rejected");
    expect(await available()).toBe(before);

    // 3. a key without the scope: refused in the console and by the API
    const r = await signIn(reader);
    const refused = await r.page.goto(`${url}/console/withdrawals`);
    expect(refused!.status()).toBe(403);
    await shows(r.page.getByRole("alert"), "AUTH_SCOPE_MISSING");
    const readerCsrf = await csrfOf(r.page);
    const third = await withdraw("1.2");
    const viaConsole = await r.page.request.post(`${url}/console/withdrawals/${third}/approve`, {
      form: { _csrf: readerCsrf },
    });
    expect(viaConsole.status()).toBe(403);
    expect(await viaConsole.text()).toContain("AUTH_SCOPE_MISSING");
    const viaApi = await api(reader, "POST", `/v1/withdrawals/${third}/approve`, {});
    expect(viaApi).toMatchObject({ status: 403, body: { code: "AUTH_SCOPE_MISSING" } });
    expect(await statusOf(third)).toBe("pending_approval");
    await shot(r.page, "refused-without-scope");

    // 4. a break (the hot wallet's unbooked funding) acknowledged, then resolved by its booking
    for (let i = 0; i < 4; i++) await rpc("evm_mine");
    const run = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
    }).run({
      chain,
      full: true,
    });
    expect(run.breaks.length).toBeGreaterThan(0);
    const booking = await api(admin, "POST", "/v1/treasury/moves", {
      move: "fund",
      chain: chain.key,
      txHash: prepared.fundTxHash,
      wallet: prepared.hotWallet,
      amount: parseEther("100").toString(),
      reason: "hot wallet float",
    });
    expect(booking.status).toBe(200);
    const fixedBy = (booking.body.transfers as { id: string }[])[0]!.id;
    const ad = await signIn(admin);
    await shot(ad.page, "overview");
    await ad.page.goto(`${url}/console/recon`);
    await shot(ad.page, "recon-open");
    const row = ad.page.locator("tr[data-break]").first();
    const ref = (await row.getAttribute("data-break"))!;
    await row.getByLabel("Why").first().fill("funding not booked yet");
    await row.getByRole("button", { name: /^Acknowledge/ }).click();
    await shows(ad.page.getByRole("status").first(), "break acknowledged");
    const stateOf = async () =>
      (await api(admin, "GET", "/v1/recon/breaks?state=acknowledged")).body.breaks as {
        identity: string;
      }[];
    expect((await stateOf()).map((x) => x.identity)).toContain(ref);
    const again = ad.page.locator(`tr[data-break="${ref}"]`);
    await again.getByLabel("Why").fill("booked as treasury fund");
    await again.getByLabel("Fixed by").fill(fixedBy);
    await again.getByRole("button", { name: /^Resolve/ }).click();
    await shows(ad.page.getByRole("status").first(), "break resolved");
    const resolved = (await api(admin, "GET", "/v1/recon/breaks?state=resolved")).body.breaks as {
      identity: string;
    }[];
    expect(resolved.map((x) => x.identity)).toContain(ref);

    // every page renders for the admin; screenshots for people to look at
    for (const [name, path] of [
      ["overview", "/console"],
      ["withdrawals", "/console/withdrawals"],
      ["deposits", "/console/deposits"],
      ["recon", "/console/recon"],
      ["treasury", "/console/treasury"],
      ["webhooks", "/console/webhooks"],
      ["recon-run-report", `/console/recon/runs/${run.runId}/report`],
      ["audit", "/console/audit"],
    ] as [string, string][]) {
      const res = await ad.page.goto(`${url}${path}`);
      expect(res!.status(), path).toBe(200);
      // usable at 1280 px: nothing wider than the window
      await expectNoHorizontalOverflow(ad.page, path);
      await shot(ad.page, name);
    }
    await shows(ad.page.getByRole("status").first(), "Hash chain verified");
    // the overview's hot wallet row comes from the latest run: the wallet, in ETH, and which run
    await ad.page.goto(`${url}/console`);
    const hot = ad.page.locator("#hot-wallets ~ table tbody tr").first();
    await waitFor(
      "the hot wallet on the overview",
      async () =>
        ((await hot.textContent()) ?? "").toLowerCase().includes(prepared.hotWallet.toLowerCase()),
      { timeoutMs: 20_000 },
    );
    await shows(hot, ` ETH`);
    await shows(hot, `run ${run.runId} at block ${run.block}`);
    await ad.page.goto(`${url}/console/audit`);
    await shows(ad.page.getByRole("main"), "console.signed_in");
    await shows(ad.page.getByRole("main"), "withdrawal.approved_by");

    // 5. sign-out ends the session: its key is revoked, the console sends back to sign-in
    const adminSession = (await ad.context.cookies()).find((x) => x.name === SESSION_COOKIE)!.value;
    await ad.page.getByRole("button", { name: "Sign out" }).click();
    await ad.page.waitForURL(`${url}/console/sign-in`);
    await shot(ad.page, "sign-in");
    await ad.page.goto(`${url}/console/audit`);
    expect(new URL(ad.page.url()).pathname).toBe("/console/sign-in");
    expect((await api(adminSession, "GET", "/v1/audit")).status).toBe(401);
    const replay = await fetch(`${url}/console/audit`, {
      headers: { cookie: `${SESSION_COOKIE}=${encodeURIComponent(adminSession)}` },
      redirect: "manual",
    });
    expect(replay.status).toBe(303);
    const audit = await pool.query<{ action: string }>(
      "SELECT action FROM audit.audit_log WHERE actor = 'ops-admin' AND entity_type = 'console_session' ORDER BY id",
    );
    expect(audit.rows.map((x) => x.action)).toEqual(["console.signed_in", "console.signed_out"]);
    for (const s of [a, b, c, r]) await s.context.close();
    await ad.context.close();
  }, 360_000);
});
