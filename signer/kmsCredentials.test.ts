import { beforeEach, describe, expect, it, vi } from "vitest";
import { createKmsClient, isKmsEmulatorEndpoint } from "./kmsAccount.js";

describe("isKmsEmulatorEndpoint: dummy credentials only for the local emulator", () => {
  it.each([
    "http://127.0.0.1:4599",
    "http://127.9.8.7:4599",
    "http://localhost:4599",
    "http://LOCALHOST:4599/",
    "http://kms.localhost:4599",
    "http://[::1]:4599",
  ])("%s is the emulator", (endpoint) => {
    expect(isKmsEmulatorEndpoint(endpoint, false)).toBe(true);
  });

  it.each([
    "https://kms.us-east-1.amazonaws.com",
    "https://kms-fips.us-east-1.amazonaws.com",
    "https://vpce-0abc123-xyz.kms.eu-west-1.vpce.amazonaws.com",
    "http://10.0.0.5:4599",
    "http://127.0.0.1.example.com",
    "http://localhost.example.com",
    "not a url",
  ])("%s is real KMS", (endpoint) => {
    expect(isKmsEmulatorEndpoint(endpoint, false)).toBe(false);
  });

  it("no endpoint is real KMS, even with the flag", () => {
    expect(isKmsEmulatorEndpoint(undefined, false)).toBe(false);
    expect(isKmsEmulatorEndpoint(undefined, true)).toBe(false);
  });

  it("KMS_EMULATOR=1 (the config's flag) marks any endpoint as the emulator (e.g. a container name)", () => {
    expect(isKmsEmulatorEndpoint("http://kms-emulator:4599", true)).toBe(true);
    expect(isKmsEmulatorEndpoint("http://kms-emulator:4599", false)).toBe(false);
    expect(isKmsEmulatorEndpoint("http://kms-emulator:4599")).toBe(false);
  });
});

const awsKeyBefore = process.env.AWS_ACCESS_KEY_ID;
const awsSecretBefore = process.env.AWS_SECRET_ACCESS_KEY;

describe("createKmsClient credentials", () => {
  // Undone after each test by vitest (vitest.config.ts `unstubEnvs`): the files after this one
  // share its process.
  beforeEach(() => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "secret-from-environment");
  });

  it("a VPC/FIPS endpoint resolves the default credential chain (here: the environment)", async () => {
    const client = createKmsClient({
      region: "us-east-1",
      endpoint: "https://kms-fips.us-east-1.amazonaws.com",
    });
    const creds = await client.config.credentials();
    expect(creds.accessKeyId).toBe("AKIAFROMENVIRONMENT");
    client.destroy();
  });

  it("the loopback emulator gets the dummy credentials", async () => {
    const client = createKmsClient({ region: "us-east-1", endpoint: "http://127.0.0.1:4599" });
    const creds = await client.config.credentials();
    expect(creds.accessKeyId).toBe("emulator");
    client.destroy();
  });
});

describe("after the credential tests", () => {
  it("the environment is as it was: vitest undid the stubs (the files after this share it)", () => {
    expect(process.env.AWS_ACCESS_KEY_ID).toBe(awsKeyBefore);
    expect(process.env.AWS_SECRET_ACCESS_KEY).toBe(awsSecretBefore);
  });
});
