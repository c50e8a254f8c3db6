/**
 * For the console's OIDC tests: panva's `oidc-provider` on loopback with one confidential client
 * (PKCE required) and users whose `groups` claim is given; its development login and consent forms
 * take any password. Groups and email go into the ID token (what the console reads). Test-only.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";
import type { ApiTestOptions } from "../../testing/apiTestContext.js";

export type TestOidcProvider = {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close: () => Promise<void>;
};

export async function startTestOidcProvider(options: {
  redirectUri: string;
  /** login -> groups; the email is `<login>@example.test`, verified. */
  users: Readonly<Record<string, readonly string[]>>;
  /**
   * login -> the email claims the provider sends instead (some send `email_verified` as a string:
   * Entra ID, Apple, Cognito).
   */
  emails?: Readonly<Record<string, { email: string; email_verified: unknown }>>;
}): Promise<TestOidcProvider> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = "custody-console";
  const clientSecret = "test-client-secret-0123456789";
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_post",
      },
    ],
    pkce: { required: () => true },
    claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
    // Put the requested claims in the ID token (what the console reads), as Okta/Entra can.
    conformIdTokenClaims: false,
    cookies: { keys: ["oidc-test-cookie-key"] },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: `${id}@example.test`,
            email_verified: true,
            ...options.emails?.[id],
            groups: [...(options.users[id] ?? [])],
          };
        },
      };
    },
  });
  server.on("request", provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Options for an api test context whose console signs in at `provider`: `api.console.oidc` in the
 * config file (scopes openid, email, groups; `groups` maps the provider's groups to scopes) and the
 * client secret in the config, as the config loader reads it from `CONSOLE_OIDC_SECRET`.
 */
export function consoleOidcOptions(
  provider: TestOidcProvider,
  { redirectUrl, groups }: { redirectUrl: string; groups: Record<string, string[]> },
): Required<Pick<ApiTestOptions, "file" | "configure">> {
  return {
    file: {
      api: {
        console: {
          oidc: {
            issuer: provider.issuer,
            clientId: provider.clientId,
            clientSecretEnv: "CONSOLE_OIDC_SECRET",
            redirectUrl,
            scopes: ["openid", "email", "groups"],
            groups,
          },
        },
      },
    },
    configure: (ctx) => {
      const config = Object.freeze({
        ...ctx.config,
        consoleOidcClientSecret: provider.clientSecret,
      });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  };
}
