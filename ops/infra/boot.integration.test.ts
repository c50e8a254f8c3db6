/**
 * The synthesized task definitions really boot the service: the CDK app is synthesized with a
 * config for the local stack, and every ECS service's containers (and the nightly one-shot) are
 * run here with exactly their command after the image's entry (`node ops/bin/custody-node.js`) and
 * exactly their environment names. Values come from the local stack (test Postgres database, Redis
 * prefix, anvil, KMS emulator); the config JSON is the SSM parameter's value from the template.
 * The only name added is AWS_ENDPOINT_URL_KMS (the emulator; the template must not have it).
 *
 * Every role reports /healthz 200 and /readyz 200, and /metrics of the roles together exports every
 * metric the alert rules, the dashboards and the worker's autoscaling use.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateAliasCommand, CreateKeyCommand } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { createKmsClient } from "../../signer/kmsAccount.js";
import { type Anvil, startAnvil } from "../devstack/anvil.js";
import { alertRules, baseMetricName, dashboards, metricNamesIn } from "../observability/rules.js";
import { createTestDatabase, type TestDatabase } from "../testing/database.js";
import { createTestRedis, type TestRedis } from "../testing/redis.js";
import { waitFor, within } from "../testing/wait.js";
import { IMAGE_ENTRY, STOP_TIMEOUT_S } from "./plan.js";
import { QUEUE_DEPTH_METRIC } from "./stack.js";
import {
  type ContainerDefinition,
  containerNamed,
  resourcesOfType,
  type ServiceTask,
  scheduledTasks,
  serviceTasks,
  synthTemplate,
  type Template,
} from "./template.js";

const HOT_ALIAS = "alias/custody-boot-local-a-hot";

type Booted = {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

let anvil: Anvil;
let kms: KmsEmulator;
let db: TestDatabase;
let redis: TestRedis;
let template: Template;
const dir = mkdtempSync(path.join(tmpdir(), "custody-boot-"));
const booted: Booted[] = [];

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 31337, blockTime: 1 });
  kms = await startKmsEmulator({ port: 0 });
  db = await createTestDatabase({ migrate: false });
  redis = await createTestRedis();
  const client = createKmsClient({ region: "us-east-1", endpoint: kms.url });
  try {
    const key = await client.send(
      new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
    );
    await client.send(
      new CreateAliasCommand({ AliasName: HOT_ALIAS, TargetKeyId: key.KeyMetadata?.KeyId }),
    );
  } finally {
    client.destroy();
  }
  const config = {
    chains: [
      {
        key: "local-a",
        chainId: 31337,
        name: "boot test anvil",
        rpcUrls: [anvil.rpcUrl],
        confirmations: { kind: "blocks", blocks: 2 },
        reorgWindow: 4,
        blockTimeMs: 1000,
        feeModel: "eip1559",
        nativeHotFloor: "1000000000000000000",
        nativeHotCeiling: "50000000000000000000",
        tokens: [],
      },
    ],
    hotWallets: [{ chain: "local-a", kmsKeyId: HOT_ALIAS }],
    webhooks: [{ url: "http://127.0.0.1:9/hooks", secretEnv: "WEBHOOK_SECRET_MAIN" }],
  };
  const configPath = path.join(dir, "infra.config.json");
  writeFileSync(configPath, JSON.stringify(config));
  template = synthTemplate(
    { CUSTODY_ENV: "boot", CUSTODY_INFRA_CONFIG: configPath, CDK_DEFAULT_REGION: "us-east-1" },
    path.join(dir, "cdk.out"),
  );
}, 240_000);

afterAll(async () => {
  for (const b of booted) if (b.child.exitCode === null) b.child.kill("SIGKILL");
  await Promise.all(
    booted.map((b) => within(`${b.name} to exit`, b.exited, 10_000).catch(() => {})),
  );
  if (redis) {
    // The services' keys are under the hash-tagged prefix; createTestRedis cleans its plain one.
    const keys = await redis.redis.keys(`${taggedPrefix()}:*`);
    if (keys.length > 0) await redis.redis.del(...keys);
  }
  await redis?.cleanup();
  await db?.drop();
  await kms?.stop();
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

/**
 * The template's hash-tag prefix `{custody}` with this file's own name inside the tag: its keys
 * stay apart from other tests' while every key still carries a hash tag.
 */
function taggedPrefix(): string {
  return `{${redis.prefix}}`;
}

/** The config JSON the template stores in SSM (what CUSTODY_CONFIG_JSON carries on ECS). */
function ssmConfigValue(): string {
  const [param] = resourcesOfType(template, "AWS::SSM::Parameter");
  if (typeof param?.properties.Value !== "string") throw new Error("no config parameter");
  return param.properties.Value;
}

/** Local values for the container's environment names; throws on a name it does not know. */
function localEnv(container: ContainerDefinition): Record<string, string> {
  const secrets: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    CUSTODY_CONFIG_JSON: ssmConfigValue(),
    WEBHOOK_SECRET_MAIN: "boot-test-webhook-secret",
  };
  const env: Record<string, string> = {
    // Not the service's configuration: what a process needs to exist on this machine.
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? dir,
    AWS_ENDPOINT_URL_KMS: kms.url,
  };
  for (const { Name, Value } of container.Environment ?? []) {
    if (Name === "PORT") env[Name] = "0";
    else if (Name === "AWS_REGION") env[Name] = "us-east-1";
    else if (typeof Value === "string") env[Name] = Value;
    else throw new Error(`${container.Name}: env ${Name} is not a plain value`);
  }
  for (const { Name } of container.Secrets ?? []) {
    const value = secrets[Name];
    if (value === undefined)
      throw new Error(`${container.Name}: no local value for secret ${Name}`);
    env[Name] = value;
  }
  // The template's `{custody}`, with this file's own name inside the hash tag.
  if (env.REDIS_PREFIX !== undefined) {
    expect(env.REDIS_PREFIX).toBe("{custody}");
    env.REDIS_PREFIX = taggedPrefix();
  }
  return env;
}

function run(name: string, container: ContainerDefinition): Booted {
  const [node, script] = IMAGE_ENTRY;
  expect(node).toBe("node");
  const child = spawn(process.execPath, [script, ...(container.Command ?? [])], {
    cwd: repoRoot,
    env: localEnv(container),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { name, child, output: () => out, exited };
}

/**
 * Runs the container's ECS health check command (`CMD node -e …`) against `url` instead of the
 * container's fixed port; returns its exit status.
 */
function runHealthCheck(container: ContainerDefinition, url: string): number | null {
  const [cmd, node, ...args] = container.HealthCheck?.Command ?? [];
  expect([cmd, node]).toEqual(["CMD", "node"]);
  const local = args.map((a) => a.replace(/http:\/\/127\.0\.0\.1:\d+/, url));
  return spawnSync(process.execPath, local, { timeout: 30_000 }).status;
}

async function startedUrl(b: Booted): Promise<string> {
  let exit: { code: number | null } | undefined;
  void b.exited.then((e) => {
    exit = e;
  });
  try {
    return await waitFor(
      `${b.name} to log its URL`,
      () => {
        if (exit) throw new Error(`${b.name} exited (code ${exit.code}) before it started`);
        const line = b
          .output()
          .split("\n")
          .find((l) => l.includes('"custody-node started"'));
        return line
          ? (JSON.parse(line) as { url: string }).url.replace("0.0.0.0", "127.0.0.1")
          : undefined;
      },
      { timeoutMs: 120_000, everyMs: 200 },
    );
  } catch (error) {
    throw new Error(`${String(error)}\n${b.output().slice(-3000)}`);
  }
}

describe("synthesized task definitions boot the service locally", () => {
  let tasks: ServiceTask[];
  const exported = new Set<string>();

  it("runs the migrate container to completion first (exit 0), the same one in every task", async () => {
    tasks = [...serviceTasks(template), ...scheduledTasks(template)];
    expect(tasks.map((t) => t.name).sort()).toEqual(
      [
        "custody-boot-api",
        "custody-boot-indexer-local-a",
        "custody-boot-reconcile-nightly",
        "custody-boot-reconciler",
        "custody-boot-signer-local-a",
        "custody-boot-worker",
      ].sort(),
    );
    const migrates = tasks.map((t) => containerNamed(t, "migrate"));
    const shape = (c: ContainerDefinition) => ({
      command: c.Command,
      env: c.Environment?.map((e) => e.Name),
      secrets: c.Secrets?.map((e) => e.Name),
    });
    for (const m of migrates) expect(shape(m)).toEqual(shape(migrates[0] as ContainerDefinition));
    const migrate = run("migrate", migrates[0] as ContainerDefinition);
    booted.push(migrate);
    const { code } = await within("migrate to finish", migrate.exited, 120_000);
    expect(code, migrate.output().slice(-3000)).toBe(0);
  }, 180_000);

  it("every service's app container reports /healthz and /readyz 200, then stops on SIGTERM with exit 0", async () => {
    const services = serviceTasks(template);
    // The signer service runs two tasks; both run here, and the lease keeps one active.
    const replicas = services.flatMap((t) =>
      t.name.endsWith("-signer-local-a") ? [t.name, `${t.name}#2`] : [t.name],
    );
    const running = replicas.map((name) => {
      const task = services.find((t) => name.startsWith(t.name)) as ServiceTask;
      return { task, proc: run(name, containerNamed(task, "app")) };
    });
    booted.push(...running.map((r) => r.proc));
    const urls = await Promise.all(running.map((r) => startedUrl(r.proc)));
    const report: Record<string, { healthz: number; readyz: number; healthCheck: number | null }> =
      {};
    for (const [i, { task, proc }] of running.entries()) {
      const url = urls[i] as string;
      const name = proc.name;
      const healthz = (await fetch(`${url}/healthz`)).status;
      let lastBody = "";
      const readyz = await waitFor(
        `${name} /readyz 200`,
        async () => {
          const res = await fetch(`${url}/readyz`);
          lastBody = await res.text();
          return res.status === 200 ? res.status : undefined;
        },
        { timeoutMs: 90_000, everyMs: 500 },
      ).catch((error: Error) => {
        throw new Error(`${error.message}: last body ${lastBody}\n${proc.output().slice(-2000)}`);
      });
      const healthCheck = runHealthCheck(containerNamed(task, "app"), url);
      report[name] = { healthz, readyz, healthCheck };
      const metrics = await (await fetch(`${url}/metrics`)).text();
      for (const m of metrics.matchAll(/^# TYPE (\S+) /gm)) exported.add(m[1] as string);
    }
    expect(report).toEqual(
      Object.fromEntries(replicas.map((n) => [n, { healthz: 200, readyz: 200, healthCheck: 0 }])),
    );

    // Exactly one of the two signer tasks holds the hot wallet's broadcaster lease.
    const signerUrls = running
      .map((r, i) => ({ name: r.proc.name, url: urls[i] as string }))
      .filter((r) => r.name.includes("-signer-local-a"));
    expect(signerUrls).toHaveLength(2);
    const leaseHeld = async (url: string) =>
      [
        ...(await (await fetch(`${url}/metrics`)).text()).matchAll(
          /^custody_signer_lease_held\{[^}]*\} (\S+)$/gm,
        ),
      ].reduce((n, m) => n + Number(m[1]), 0);
    const held = await waitFor(
      "exactly one signer task to hold the lease",
      async () => {
        const h = await Promise.all(signerUrls.map((r) => leaseHeld(r.url)));
        return h[0]! + h[1]! === 1 ? h : undefined;
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    expect([...held].sort()).toEqual([0, 1]);

    for (const { proc } of running) proc.child.kill("SIGTERM");
    const exits = await Promise.all(
      running.map((r) =>
        within(`${r.proc.name} to exit after SIGTERM`, r.proc.exited, STOP_TIMEOUT_S * 1000),
      ),
    );
    expect(
      Object.fromEntries(running.map((r, i) => [r.proc.name, exits[i]])),
      running.map((r) => r.proc.output().slice(-800)).join("\n---\n"),
    ).toEqual(Object.fromEntries(replicas.map((n) => [n, { code: 0, signal: null }])));
  }, 300_000);

  it("the nightly one-shot reconcile runs to completion (exit 0 on a clean ledger)", async () => {
    const nightly = scheduledTasks(template)[0] as ServiceTask;
    const proc = run(nightly.name, containerNamed(nightly, "app"));
    booted.push(proc);
    const { code } = await within("the nightly reconcile to finish", proc.exited, 120_000);
    expect(code, proc.output().slice(-3000)).toBe(0);
  }, 180_000);

  it("the roles export every metric the alerts, dashboards and autoscaling use", () => {
    expect(exported.size).toBeGreaterThan(20);
    const used = new Map<string, string>();
    for (const rule of alertRules())
      for (const m of metricNamesIn(rule.expr)) used.set(m, `alert ${rule.name}`);
    for (const d of dashboards())
      for (const expr of d.exprs)
        for (const m of [...expr.matchAll(/\b(?:custody|process|nodejs)_[a-z0-9_]+/g)])
          used.set(baseMetricName(m[0]), `dashboard ${d.file}`);
    used.set(QUEUE_DEPTH_METRIC, "worker autoscaling (ops/infra/stack.ts)");
    expect(used.size).toBeGreaterThan(40);
    const missing = [...used].filter(([name]) => !exported.has(name));
    expect(missing).toEqual([]);
  });
});
