/**
 * kill -9 of the signer process between storing a node's refusal of a request's bytes and
 * signing the cancel of its nonce (crash point `after_reject`), then after storing the cancel
 * but before sending it (`after_cancel_commit`). The nonce's only attempt is `rejected` (or an
 * unsent cancel); the next signer derives the cancel job from Postgres and the chain, uses the
 * nonce, and the wallet keeps sending: no gap, no operator.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import { tsNodeArgs, writeChainConfig } from "../ops/testing/process.js";
import { within } from "../ops/testing/wait.js";
import { getTxOutcomes } from "./outcomes.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

const script = path.join(repoRoot, "signer", "testing", "walletSignerProcess.ts");
let t: SignerTest;
let dir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  t = await startSignerTest({ chain: { anvilArgs: SMALL_BLOCKS } });
  dir = mkdtempSync(path.join(tmpdir(), "signer-cancel-crash-"));
  writeChainConfig(
    path.join(dir, "config.json"),
    t.ctx.config.chains[0]!,
    {
      confirmations: { kind: "blocks", blocks: 1 },
      reorgWindow: 2,
      blockTimeMs: 1000,
      feeModel: "eip1559",
    },
    t.keyId,
  );
});

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function spawnSigner(crashAt = "") {
  const child = spawn(process.execPath, tsNodeArgs(script), {
    cwd: repoRoot,
    env: {
      ...process.env,
      CUSTODY_CONFIG: path.join(dir, "config.json"),
      DATABASE_URL: t.ctx.db.url,
      REDIS_URL: t.ctx.config.env.REDIS_URL,
      REDIS_PREFIX: t.ctx.config.env.REDIS_PREFIX,
      AWS_ENDPOINT_URL_KMS: t.kmsUrl,
      LOG_LEVEL: "warn",
      SIGNER_CRASH_AT: crashAt,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("close", (_code, signal) => {
      children.delete(child);
      resolve(signal);
    }),
  );
  return { child, exited, output: () => out };
}

async function attempts(id: string) {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT purpose, status FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
    [id],
  );
  return rows as { purpose: string; status: string }[];
}

describe("kill -9 around a cancel", () => {
  it("uses the nonce of a rejected attempt after the signer died before (or right after) storing its cancel", async () => {
    // 1. Dies right after the refusal is stored: the nonce's only attempt is rejected.
    const first = spawnSigner("after_reject:1");
    await t.withdraw("crash-dead", { gasLimit: 2_000_000n }); // more gas than a block holds
    expect(await within("the signer to kill itself", first.exited, 60_000)).toBe("SIGKILL");
    expect(first.output()).toContain("after_reject");
    expect(await attempts("crash-dead")).toEqual([{ purpose: "send", status: "rejected" }]);

    // 2. The next one dies after storing the cancel, before sending it.
    const second = spawnSigner("after_cancel_commit:1");
    expect(await within("the second signer to kill itself", second.exited, 60_000)).toBe("SIGKILL");
    expect(await attempts("crash-dead")).toEqual([
      { purpose: "send", status: "rejected" },
      { purpose: "cancel", status: "signed" },
    ]);

    // 3. A signer left alone: the stored cancel is sent, mines, and the request fails only once
    // that block is final; the next request gets the next nonce and confirms.
    spawnSigner();
    await t.withdraw("crash-next");
    const [dead, next] = await waitFor(
      "both final",
      async () => {
        const list = await getTxOutcomes(t.ctx.db.pool, {
          requestIds: ["crash-dead", "crash-next"],
        });
        if (list.some((o) => o.status === "broadcast" || o.status === "confirmed"))
          await t.rpc("evm_mine");
        return list.every((o) => o.status === "failed" || o.status === "finalized")
          ? list
          : undefined;
      },
      { timeoutMs: 90_000, everyMs: 250 },
    );
    expect(dead).toMatchObject({
      requestId: "crash-dead",
      status: "failed",
      errorCode: "CANCELLED",
      nonce: 0n,
    });
    expect(next).toMatchObject({ requestId: "crash-next", status: "finalized", nonce: 1n });
    // The one cancel stored before the crash is the one that mined: no second cancel.
    expect(await attempts("crash-dead")).toEqual([
      { purpose: "send", status: "rejected" },
      { purpose: "cancel", status: "mined" },
    ]);
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(2);
    expect((await t.outcome("crash-next")).reorgs).toBe(0);
  }, 150_000);
});
