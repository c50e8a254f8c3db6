/** `custody-node apikeys create|revoke|list|set-email`: the only way API keys are made (no bootstrap route). */

import type { Command } from "commander";
import { chainSchema } from "../chains/index.js";
import { appendAudit } from "../foundation/audit.js";
import { loadConfig } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import {
  createApiKey,
  hasScope,
  listApiKeys,
  parseScopes,
  revokeApiKey,
  SCOPES,
  setApiKeyEmail,
} from "./apiKeys.js";
import { ApiKeyEmailRequiredError, NotFoundError } from "./errors.js";
import { registerWithdrawalCommands } from "./withdrawals/cli.js";

async function withPool<T>(
  fn: (pool: ReturnType<typeof createPool>, config: ReturnType<typeof loadConfig>) => Promise<T>,
): Promise<T> {
  const config = loadConfig(chainSchema);
  const pool = createPool(config.env.DATABASE_URL, { max: 1, applicationName: "custody-node cli" });
  try {
    return await fn(pool, config);
  } finally {
    await pool.end();
  }
}

export function registerCommands(program: Command): void {
  registerWithdrawalCommands(program);
  const apikeys = program
    .command("apikeys")
    .description("create, revoke and list API keys, and set the person (email) behind one");

  apikeys
    .command("create")
    .description("create an API key; prints it once (only its hash is stored)")
    .requiredOption("--owner <owner>", "the person or service the key belongs to")
    .requiredOption("--scopes <scopes>", `comma-separated: ${SCOPES.join(", ")}`)
    .option(
      "--email <address>",
      "the person behind the key (their SSO email): their keys and SSO sessions are one approver; required for a key that can approve when console SSO is configured",
    )
    .option("--description <text>", "what the key is for", "")
    .option("--json", "print JSON", false)
    .action(
      async (opts: {
        owner: string;
        scopes: string;
        email?: string;
        description: string;
        json: boolean;
      }) => {
        await withPool(async (pool, config) => {
          const scopes = parseScopes(opts.scopes.split(",").map((s) => s.trim()));
          if (
            config.api?.console?.oidc &&
            !opts.email &&
            hasScope({ scopes }, "withdrawals:approve")
          )
            throw new ApiKeyEmailRequiredError(scopes);
          const { key, plaintext } = await createApiKey(pool, {
            owner: opts.owner,
            email: opts.email,
            scopes,
            description: opts.description,
          });
          await appendAudit(pool, {
            actor: "cli",
            action: "apikey.created",
            entityType: "api_key",
            entityId: key.id,
            details: { owner: key.owner, email: key.email, scopes: key.scopes },
          });
          if (opts.json)
            console.log(
              JSON.stringify({
                id: key.id,
                key: plaintext,
                owner: key.owner,
                email: key.email,
                scopes: key.scopes,
              }),
            );
          else {
            console.log(
              `id:     ${key.id}\nowner:  ${key.owner}${key.email ? `\nemail:  ${key.email}` : ""}\nscopes: ${key.scopes.join(",")}`,
            );
            console.log(`key:    ${plaintext}\n(store it now: it is not shown again)`);
          }
        });
      },
    );

  apikeys
    .command("revoke <id>")
    .description("revoke an API key by id (effective immediately)")
    .action(async (id: string) => {
      await withPool(async (pool) => {
        if (!(await revokeApiKey(pool, id))) throw new NotFoundError("API key", id);
        await appendAudit(pool, {
          actor: "cli",
          action: "apikey.revoked",
          entityType: "api_key",
          entityId: id,
        });
        console.log(`revoked ${id}`);
      });
    });

  apikeys
    .command("set-email")
    .description(
      "set the person behind a key (their SSO email; audited: who and why): instead of re-issuing a key created without --email. Refused for a revoked key, and for a change of email while the key requested or decided on a withdrawal still waiting for approvals",
    )
    .requiredOption("--id <id>", "the key's id (custody-node apikeys list)")
    .requiredOption("--email <address>", "the person's email (their SSO email)")
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "why (e.g. who confirmed the key is theirs)")
    .action(async (opts: { id: string; email: string; by: string; reason: string }) => {
      await withPool(async (pool) => {
        const { key, previous, changed } = await setApiKeyEmail(pool, opts);
        console.log(
          changed
            ? `${key.id}  ${key.owner} <${key.email}>  (was ${previous ? `<${previous}>` : "no email"}; set by ${opts.by})`
            : `${key.id}  ${key.owner} <${key.email}>  (unchanged)`,
        );
      });
    });

  apikeys
    .command("list")
    .description("list API keys (never their secrets)")
    .action(async () => {
      await withPool(async (pool) => {
        for (const k of await listApiKeys(pool))
          console.log(
            `${k.id}  ${k.owner}${k.email ? ` <${k.email}>` : ""}  ${k.scopes.join(",")}  ${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : "active"}`,
          );
      });
    });
}
