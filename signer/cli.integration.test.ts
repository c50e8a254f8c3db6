/** `custody-node kms-local` and `custody-node keys create|list|address` as real processes. */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateKeyCommand, ScheduleKeyDeletionCommand } from "@aws-sdk/client-kms";
import { getAddress } from "viem";
import { afterAll, expect, it } from "vitest";
import { type CliProcess, spawnCli } from "../ops/testing/process.js";
import { waitFor, within } from "../ops/testing/wait.js";
import { createKmsClient } from "./kmsAccount.js";

const dir = mkdtempSync(path.join(tmpdir(), "kms-cli-"));
let emulator: CliProcess | undefined;

afterAll(async () => {
  emulator?.child.kill("SIGTERM");
  await emulator?.exited;
  rmSync(dir, { recursive: true, force: true });
});

async function run(args: string[], env: Record<string, string>): Promise<string> {
  const p = spawnCli(args, env);
  const { code } = await within(`custody-node ${args.join(" ")}`, p.exited, 120_000);
  expect(code, p.output()).toBe(0);
  return p.output();
}

it("creates a hot-wallet key in the emulator and shows the same address everywhere", async () => {
  const file = path.join(dir, "keys.json");
  // Port 0: the emulator binds a free port itself and reports it (no probe-then-bind race).
  emulator = spawnCli(["kms-local", "--port", "0", "--file", file], {});
  const url = await waitFor(
    "the emulator to report its address",
    () => /KMS emulator on (http:\/\/127\.0\.0\.1:\d+)/.exec(emulator!.output())?.[1],
    { timeoutMs: 60_000 },
  );
  expect(url).not.toMatch(/:0$/);
  const env = { AWS_ENDPOINT_URL_KMS: url };
  const created = await run(["keys", "create", "--alias", "hot-cli"], env);
  const keyId = /key ([0-9a-f-]{36})/.exec(created)?.[1];
  const address = /address (0x[0-9a-fA-F]{40})/.exec(created)?.[1];
  expect(keyId).toBeDefined();
  expect(address).toBe(getAddress(address!));
  expect((await run(["keys", "address", "alias/hot-cli"], env)).trim().split("\n").at(-1)).toBe(
    address,
  );
  // A key pending deletion is listed with its state and deletion date, the others as before.
  const kms = createKmsClient({ region: "us-east-1", endpoint: url });
  const doomed = (
    await kms.send(new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }))
  ).KeyMetadata!.KeyId!;
  const { DeletionDate } = await kms.send(
    new ScheduleKeyDeletionCommand({ KeyId: doomed, PendingWindowInDays: 7 }),
  );
  kms.destroy();
  // old code: expected 1 to be +0 (`keys list` printed the first key, then ended on
  // KMSInvalidStateException: <arn> is pending deletion.)
  const listed = await run(["keys", "list"], env);
  expect(listed).toContain(`${keyId}  ${address}  alias/hot-cli`);
  expect(listed).toContain(
    `${doomed}  PendingDeletion (deleted for good at ${DeletionDate!.toISOString()})`,
  );
  // The key lives in the emulator's file, not anywhere in our config or database.
  expect(
    JSON.parse(readFileSync(file, "utf8")).keys.map((k: { keyId: string }) => k.keyId),
  ).toContain(keyId);
}, 600_000); // four CLI processes: each takes seconds to start, and up to a minute on a heavily loaded machine
