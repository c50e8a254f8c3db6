import path from "node:path";
import { getAddress } from "viem";
import { describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { configIssuesOf, minimalChain, writeConfigFile } from "../ops/testing/configFile.js";
import {
  activeHotWalletAddress,
  defaultConfigPath,
  loadConfig,
  parseFileConfig,
} from "./config.js";

describe("loadConfig", () => {
  it("loads the shipped example config with defaults applied", () => {
    const config = loadConfig(chainSchema, { CUSTODY_CONFIG: defaultConfigPath });
    expect(config.chains.map((c) => [c.key, c.chainId, c.feeModel])).toEqual([
      ["local-a", 31337, "eip1559"],
      ["local-b", 31338, "legacy"],
    ]);
    expect(config.env.PORT).toBe(8080);
    expect(config.env.DATABASE_URL).toBe("postgres://postgres@127.0.0.1:5432/custody");
    expect(config.chains[0]!.maxFeePerGas).toBe(200_000_000_000n);
    expect(Object.isFrozen(config.chains[0])).toBe(true);
  });

  it("reads KMS_EMULATOR as a flag, refusing a value that is neither yes nor no", () => {
    const flag = (value?: string) =>
      loadConfig(chainSchema, {
        CUSTODY_CONFIG: defaultConfigPath,
        ...(value === undefined ? {} : { KMS_EMULATOR: value }),
      }).env.KMS_EMULATOR;
    expect([flag(), flag(""), flag("0"), flag("false")]).toEqual([false, false, false, false]);
    expect([flag("1"), flag("true")]).toEqual([true, true]);
    expect(configIssuesOf(() => flag("yes")).map((i) => i.field)).toEqual(["env.KMS_EMULATOR"]);
  });

  it("names every bad field at once, from the environment and the file", () => {
    const file = writeConfigFile({
      chains: [
        {
          key: "Bad Key",
          chainId: 0,
          name: "x",
          rpcUrls: [],
          confirmations: { kind: "blocks", blocks: -1 },
          reorgWindow: 5,
          blockTimeMs: 1000,
          feeModel: "eip4844",
          tokens: [{ address: "0x1234", symbol: "USDC", decimals: 6 }],
        },
      ],
      hotWallets: [{ chain: "nowhere", kmsKeyId: "alias/hot" }],
      surprise: true,
    });
    const issues = configIssuesOf(() =>
      loadConfig(chainSchema, { CUSTODY_CONFIG: file, PORT: "70000", LOG_LEVEL: "loud" }),
    );
    const fields = issues.map((i) => i.field).sort();
    const base = path.basename(file);
    expect(fields).toEqual(
      [
        "env.LOG_LEVEL",
        "env.PORT",
        base,
        `${base}.chains.0.chainId`,
        `${base}.chains.0.confirmations.blocks`,
        `${base}.chains.0.feeModel`,
        `${base}.chains.0.key`,
        `${base}.chains.0.rpcUrls`,
        `${base}.chains.0.tokens.0.address`,
      ].sort(),
    );
    expect(issues.find((i) => i.field === base)?.message).toMatch(/surprise/);
  });

  it("rejects unknown hot wallet chains and duplicate chain ids", () => {
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, {
        chains: [minimalChain, { ...minimalChain, key: "b" }],
        hotWallets: [{ chain: "c", kmsKeyId: "k" }],
      }),
    );
    expect(issues.map((i) => i.field).sort()).toEqual([
      "config.chains.1.chainId",
      "config.hotWallets.0.chain",
    ]);
  });

  it("names the wallet that takes new withdrawals once a hot wallet is retiring (rotation)", () => {
    const hot = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const issuesFor = (hotWallets: object[]) =>
      configIssuesOf(() => parseFileConfig(chainSchema, { chains: [minimalChain], hotWallets }))
        .map((i) => i.field)
        .sort();
    // Every wallet retiring: new withdrawals would have none.
    expect(issuesFor([{ chain: "a", kmsKeyId: "old", retiring: true }])).toEqual([
      "config.hotWallets.0.retiring",
    ]);
    // The active one without its address: the api could only fall back to the retiring one.
    expect(
      issuesFor([
        { chain: "a", kmsKeyId: "old", retiring: true },
        { chain: "a", kmsKeyId: "older", retiring: true },
        { chain: "a", kmsKeyId: "new" },
      ]),
    ).toEqual(["config.hotWallets.2.address"]);
    const ok = parseFileConfig(chainSchema, {
      chains: [minimalChain],
      hotWallets: [
        { chain: "a", kmsKeyId: "old", retiring: true },
        { chain: "a", kmsKeyId: "new", address: hot.toLowerCase() },
      ],
    });
    expect(activeHotWalletAddress(ok.hotWallets, "a")).toBe(hot.toLowerCase());
    expect(ok.hotWallets[1]!.address).toBe(hot);
    // No rotation: the config names no address, the registered hot wallet is used as before.
    expect(activeHotWalletAddress([{ chain: "a", kmsKeyId: "k" }], "a")).toBeUndefined();
  });

  it("rejects withdrawal limits given twice for one asset under two spellings", () => {
    const limits = { perTransaction: "10", rolling24h: "100", approvalThreshold: "5" };
    const token = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, {
        chains: [minimalChain],
        policies: {
          withdrawals: {
            limits: {
              [`1:${token}`]: limits,
              [`1:${token.toLowerCase()}`]: { ...limits, perTransaction: "1000" },
            },
          },
        },
      }),
    );
    expect(issues.map((i) => i.field)).toEqual([
      `config.policies.withdrawals.limits.1:${token.toLowerCase()}`,
    ]);
  });

  it("refuses a mixed-case address whose EIP-55 checksum is wrong, naming the field (a typo)", () => {
    // Anvil's accounts 2-4 and USDC, each with its last character mistyped: the checksum of a
    // mixed-case address catches that; all-lowercase has none to check (viem's isAddress strict).
    const cold = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BD"; // …BC
    const hot = "0x90F79bf6EB2c4f870365E785982E1f101E93b905"; // …06
    const payee = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A66"; // …65
    const token = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49"; // …48
    const limits = { perTransaction: "10", rolling24h: "100", approvalThreshold: "5" };
    const fileWith = (a: { cold: string; hot: string; payee: string; token: string }) => ({
      chains: [
        {
          ...minimalChain,
          coldAddress: a.cold,
          tokens: [{ address: a.token, symbol: "USDC", decimals: 6 }],
          recon: { multicall3: a.payee },
        },
      ],
      hotWallets: [{ chain: "a", kmsKeyId: "hot", address: a.hot }],
      policies: {
        withdrawals: {
          globalAllowlist: [a.payee],
          customerAllowlists: { c1: [a.payee] },
          limits: { [`1:${a.token}`]: limits },
        },
      },
    });
    const issues = configIssuesOf(() =>
      parseFileConfig(chainSchema, fileWith({ cold, hot, payee, token })),
    );
    expect(issues.map((i) => i.field).sort()).toEqual(
      [
        "config.chains.0.coldAddress",
        "config.chains.0.tokens.0.address",
        "config.chains.0.recon.multicall3",
        "config.hotWallets.0.address",
        "config.policies.withdrawals.globalAllowlist.0",
        "config.policies.withdrawals.customerAllowlists.c1.0",
        `config.policies.withdrawals.limits.1:${token}`,
      ].sort(),
    );
    for (const issue of issues) expect(issue.message).toMatch(/EIP-55 checksum/);
    // All lowercase (no checksum) and correctly checksummed are taken, stored checksummed.
    const lower = parseFileConfig(
      chainSchema,
      fileWith({
        cold: cold.toLowerCase(),
        hot: hot.toLowerCase(),
        payee: payee.toLowerCase(),
        token: token.toLowerCase(),
      }),
    );
    expect(lower.chains[0]!.coldAddress).toBe(getAddress(cold));
    const good = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    expect(
      parseFileConfig(chainSchema, { chains: [{ ...minimalChain, coldAddress: good }] }).chains[0]!
        .coldAddress,
    ).toBe(good);
  });

  it("reports unreadable and malformed files naming CUSTODY_CONFIG", () => {
    expect(
      configIssuesOf(() => loadConfig(chainSchema, { CUSTODY_CONFIG: "/nonexistent/x.json" }))[0]!
        .field,
    ).toBe("env.CUSTODY_CONFIG");
    expect(
      configIssuesOf(() =>
        loadConfig(chainSchema, { CUSTODY_CONFIG: writeConfigFile("{not json") }),
      )[0]!.field,
    ).toBe("env.CUSTODY_CONFIG");
  });

  it("requires the secret of every configured webhook to be in the environment", () => {
    const file = writeConfigFile({
      chains: [minimalChain],
      webhooks: [{ url: "http://127.0.0.1:9/hook", secretEnv: "HOOK_SECRET" }],
    });
    expect(
      configIssuesOf(() => loadConfig(chainSchema, { CUSTODY_CONFIG: file })).map((i) => i.field),
    ).toEqual(["webhooks.0.secretEnv"]);
    expect(
      loadConfig(chainSchema, { CUSTODY_CONFIG: file, HOOK_SECRET: "s3cret" }).webhookSecrets,
    ).toEqual({
      HOOK_SECRET: "s3cret",
    });
    // A Standard Webhooks secret must be base64 after its prefix: refused at start, not at delivery.
    expect(
      configIssuesOf(() =>
        loadConfig(chainSchema, { CUSTODY_CONFIG: file, HOOK_SECRET: "whsec_not base64!" }),
      ),
    ).toEqual([
      {
        field: "webhooks.0.secretEnv",
        message:
          "HOOK_SECRET starts with whsec_ (a Standard Webhooks secret) but is not base64 after the prefix",
      },
    ]);
    expect(
      loadConfig(chainSchema, { CUSTODY_CONFIG: file, HOOK_SECRET: "whsec_c2VjcmV0" })
        .webhookSecrets,
    ).toEqual({ HOOK_SECRET: "whsec_c2VjcmV0" });
  });
});
