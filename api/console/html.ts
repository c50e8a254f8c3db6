/**
 * The console's HTML: plain template functions returning strings. Every value from data passes
 * `esc`; amounts are token units with the symbol (raw base units in the title); times are <time>
 * elements that console.js shows in local time and relative.
 */
import { type AssetUnits, formatTokenAmount } from "../../foundation/amounts.js";

export type AssetInfo = AssetUnits;

/** The headers every console response carries (a route may set its own CSP first). */
export function setSecurityHeaders(reply: {
  hasHeader(name: string): boolean;
  header(name: string, value: string): unknown;
}): void {
  if (!reply.hasHeader("content-security-policy"))
    reply.header(
      "content-security-policy",
      "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
  reply.header("x-content-type-options", "nosniff");
  reply.header("referrer-policy", "same-origin");
  reply.header("cache-control", "no-store");
}

/** Marks a string as already-escaped HTML. */
export type Html = { readonly html: string };
export const raw = (html: string): Html => ({ html });

export function esc(value: unknown): string {
  return String(value ?? "")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** Tagged template: interpolations are escaped unless they are Html (or arrays of Html). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return raw(out);
}
function render(v: unknown): string {
  if (v === null || v === undefined || v === false) return "";
  if (Array.isArray(v)) return v.map(render).join("");
  if (typeof v === "object" && "html" in (v as object)) return (v as Html).html;
  return esc(v);
}

/** `1,234.5 ETH` (foundation/amounts.ts's one formatter) with the raw base units on hover. */
export function amount(rawUnits: string | null | undefined, asset: AssetInfo | undefined): Html {
  if (rawUnits === null || rawUnits === undefined || rawUnits === "") return raw("—");
  if (!asset)
    return html`<span class="amount">${rawUnits} <abbr title="base units; asset not listed">units</abbr></span>`;
  return html`<span class="amount" title="${rawUnits} base units">${formatTokenAmount(rawUnits, asset)}</span>`;
}

export function time(iso: string | null | undefined): Html {
  if (!iso) return raw("—");
  return html`<time datetime="${iso}" title="${iso}">${iso.replace("T", " ").slice(0, 19)} UTC</time>`;
}

/** A hidden CSRF field and idempotency key, in every form. */
export function formGuard(csrf: string, idempotencyKey: string): Html {
  return html`<input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="_idem" value="${idempotencyKey}">`;
}

export const PAGES = [
  ["overview", "/console", "Overview"],
  ["withdrawals", "/console/withdrawals", "Withdrawals"],
  ["deposits", "/console/deposits", "Deposits"],
  ["recon", "/console/recon", "Reconciliation"],
  ["treasury", "/console/treasury", "Treasury"],
  ["webhooks", "/console/webhooks", "Webhooks"],
  ["audit", "/console/audit", "Audit log"],
] as const;
export type PageName = (typeof PAGES)[number][0];

export function layout(opts: {
  title: string;
  page: PageName | "sign-in";
  who?: { owner: string; scopes: readonly string[]; csrf: string };
  notice?: string | undefined;
  error?: string | undefined;
  /** What the person must do before acting (an SSO session's stale groups), above the page. */
  warning?: Html | undefined;
  body: Html;
}): string {
  const nav: Html = opts.who
    ? html`<nav aria-label="Console"><ul>${PAGES.map(
        ([name, href, label]) =>
          html`<li><a href="${href}"${name === opts.page ? raw(' aria-current="page"') : ""}>${label}</a></li>`,
      )}</ul></nav>
      <form method="post" action="/console/sign-out" class="signout">
        <span>Signed in as <strong>${opts.who.owner}</strong> (${opts.who.scopes.join(", ")})</span>
        <input type="hidden" name="_csrf" value="${opts.who.csrf}">
        <button type="submit">Sign out</button>
      </form>`
    : raw("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(opts.title)} · custody console</title>
<link rel="stylesheet" href="/console/assets/console.css"><script src="/console/assets/console.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>
<header><span class="brand">custody-node console</span>${nav.html}</header>
<main id="main" tabindex="-1"><h1>${esc(opts.title)}</h1>
${opts.notice ? `<p role="status" class="notice">${esc(opts.notice)}</p>` : ""}
${opts.error ? `<p role="alert" class="error">${esc(opts.error)}</p>` : ""}
${opts.warning ? `<p role="status" class="warning">${opts.warning.html}</p>` : ""}
${opts.body.html}
</main></body></html>`;
}

/**
 * Table cells wrap between words, never inside a word (`break-word` only splits a word that cannot
 * fit its column at all) and never inside an amount (`.amount` keeps `1.5 ETH` on one line); only
 * addresses and hashes (`.mono`) may break anywhere, which is what keeps wide tables within 1280 px.
 */
export const CSS = `
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,sans-serif;color:#1b1f24;background:#f6f7f9}
header{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;padding:.5rem 1rem;background:#1f2a37;color:#fff}
header a{color:#dbe7ff}header nav ul{display:flex;flex-wrap:wrap;gap:.75rem;list-style:none;margin:0;padding:0}
header a[aria-current=page]{color:#fff;font-weight:700;text-decoration:underline}.brand{font-weight:700}
.signout{margin-left:auto;display:flex;gap:.5rem;align-items:center}
main{padding:1rem;max-width:1400px}main:focus{outline:none}
.skip{position:absolute;left:-9999px}.skip:focus{left:1rem;top:.5rem;background:#fff;padding:.25rem .5rem;z-index:1}
table{width:100%;border-collapse:collapse;background:#fff;table-layout:auto;margin:.5rem 0 1.5rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6ea;vertical-align:top;overflow-wrap:break-word}
th{background:#eef1f5;font-weight:600;overflow-wrap:normal;word-break:keep-all}td.num,th.num{text-align:right;white-space:nowrap}
.amount{white-space:nowrap}
.mono{font-family:ui-monospace,monospace;font-size:12px;overflow-wrap:anywhere}
form.inline{display:flex;flex-wrap:wrap;gap:.25rem;align-items:center;margin:.15rem 0}
input[type=text],input[type=password],select{padding:.25rem .4rem;border:1px solid #9aa4b1;border-radius:3px;max-width:100%}
form.stacked{background:#fff;padding:.5rem 1rem;margin:.5rem 0 1.5rem;border:1px solid #e3e6ea}form.stacked p{margin:.5rem 0}form.stacked label{display:block;font-weight:600}
button{padding:.25rem .6rem;border:1px solid #42526e;border-radius:3px;background:#fff;cursor:pointer}
button.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}
a.button{display:inline-block;padding:.25rem .6rem;border:1px solid #42526e;border-radius:3px;background:#fff;color:inherit;text-decoration:none;white-space:nowrap}a.button.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}
:focus-visible{outline:3px solid #f0a500;outline-offset:1px}
.notice{background:#e6f4ea;border:1px solid #8bc79b;padding:.5rem}.warning{background:#fff4e5;border:1px solid #f0b35b;padding:.5rem}.error{background:#fdecea;border:1px solid #e39a93;padding:.5rem}
.bad{color:#b42318;font-weight:600}.ok{color:#067647;font-weight:600}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media print{header,form,.skip{display:none}body{background:#fff}}
`;

/** Local time and "x min ago" for every <time>; the server's UTC text stays without JS. */
export const JS = `
(function(){var rtf=new Intl.RelativeTimeFormat(undefined,{numeric:"auto"});
function rel(ms){var s=Math.round(ms/1000),a=Math.abs(s);
if(a<60)return rtf.format(s,"second");if(a<3600)return rtf.format(Math.round(s/60),"minute");
if(a<86400)return rtf.format(Math.round(s/3600),"hour");return rtf.format(Math.round(s/86400),"day");}
document.querySelectorAll("time[datetime]").forEach(function(t){var d=new Date(t.getAttribute("datetime"));
if(isNaN(d))return;t.textContent=d.toLocaleString()+" ("+rel(d.getTime()-Date.now())+")";});})();
`;
