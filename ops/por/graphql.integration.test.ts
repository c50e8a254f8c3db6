/**
 * `por verify --graphql` against the real Ponder app (subgraphs/ponder, started as a process by
 * its own test harness): a ReservesAttestor on anvil with an Attested event (a dev account is the
 * attester here), Ponder indexes it, and the CLI's verdict read through Ponder's GraphQL equals the
 * one read from the event itself: honest proof verified, a tampered one refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  encodeDeployData,
  encodeFunctionData,
  http,
  keccak256,
  type PublicClient,
  toHex,
  zeroAddress,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reservesAttestor } from "../../ledger/attest/deploy.js";
import { buildMerkleSumTree, proofPath } from "../../ledger/attest/merkleSum.js";
import { type PonderProcess, startPonder } from "../../subgraphs/testing/ponder.js";
import { type Anvil, startAnvil } from "../devstack/anvil.js";
import { createTestDatabase, type TestDatabase } from "../testing/database.js";
import { waitFor } from "../testing/wait.js";
import { runPorVerify } from "./cli.js";

let anvil: Anvil;
let db: TestDatabase;
let ponder: PonderProcess;
let dir: string;
let contract: Address;
let attestedBlock: bigint;

const tree = buildMerkleSumTree(
  Array.from({ length: 4 }, (_, i) => ({
    customerId: `c-${i}`,
    salt: keccak256(toHex(`s-${i}`)),
    balance: BigInt(100 + i),
  })),
);

function proofOf(customerId: string) {
  const leaf = tree.leaves.find((l) => l.customerId === customerId)!;
  return {
    customerId,
    salt: leaf.salt,
    balance: leaf.balance.toString(),
    path: proofPath(tree, customerId).path.map((s) => ({
      side: s.side,
      hash: s.hash,
      sum: s.sum.toString(),
    })),
    chainId: 31337,
    asset: zeroAddress,
    block: attestedBlock.toString(),
    contract,
  };
}

beforeAll(async () => {
  anvil = await startAnvil({ chainId: 31337 });
  const client = createPublicClient({
    cacheTime: 0,
    transport: http(anvil.rpcUrl),
  }) as PublicClient;
  const [dev] = (await client.request({ method: "eth_accounts" as never })) as Address[];
  const wallet = createWalletClient({ account: dev!, transport: http(anvil.rpcUrl) });
  await client.request({ method: "anvil_mine" as never, params: ["0x3"] as never });
  const deploy = await wallet.sendTransaction({
    chain: null,
    data: encodeDeployData({ ...reservesAttestor, args: [dev!] }),
  });
  const deployed = await client.waitForTransactionReceipt({ hash: deploy });
  contract = deployed.contractAddress!;
  attestedBlock = (await client.getBlockNumber()) - 1n;
  const hash = await wallet.sendTransaction({
    chain: null,
    to: contract,
    data: encodeFunctionData({
      abi: reservesAttestor.abi,
      functionName: "attest",
      args: [
        zeroAddress,
        attestedBlock,
        tree.root.sum + 1n,
        tree.root.sum,
        tree.root.hash,
        `0x${"aa".repeat(32)}`,
        `0x${"bb".repeat(32)}`,
      ],
    }),
  });
  const mined = await client.waitForTransactionReceipt({ hash });
  expect(mined.status).toBe("success");
  db = await createTestDatabase({ migrate: false });
  ponder = await startPonder({
    deployment: {
      chain: "local-a",
      chainId: 31337,
      rpcUrls: [anvil.rpcUrl],
      startBlock: Number(deployed.blockNumber),
      forwarderFactory: "0x00000000000000000000000000000000000000f1",
      reservesAttestor: contract,
      attestorStartBlock: Number(deployed.blockNumber),
      hotWallets: [dev!],
      coldWallets: [],
      tokens: [],
      pollingIntervalMs: 200,
    },
    databaseUrl: db.url,
    schema: "ponder_por_test",
  });
  await waitFor(
    `Ponder indexed block ${mined.blockNumber}`,
    async () => ((await ponder.indexedBlock()) >= Number(mined.blockNumber) ? true : undefined),
    { timeoutMs: 60_000, everyMs: 250 },
  );
  dir = mkdtempSync(path.join(tmpdir(), "por-graphql-"));
}, 180_000);
afterAll(async () => {
  await ponder?.stop();
  await db?.drop();
  await anvil?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("por verify --graphql against the Ponder app", () => {
  it("verifies an honest proof and refuses a tampered one, as the event does", async () => {
    const run = async (
      name: string,
      proof: unknown,
      source: { graphql: string } | { rpc: string; contract: string },
    ) => {
      const file = path.join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(proof));
      const r = await runPorVerify(file, { ...source, json: true });
      return { code: r.code, out: r.out };
    };
    const graphql = { graphql: `${ponder.url}/graphql` };
    const honest = await run("honest", proofOf("c-2"), graphql);
    expect(honest.code, honest.out).toBe(0);
    const verdict = JSON.parse(honest.out);
    expect(verdict.source).toBe(`GraphQL ${ponder.url}/graphql`);
    const viaEvent = JSON.parse(
      (await run("honest-rpc", proofOf("c-2"), { rpc: anvil.rpcUrl, contract })).out,
    );
    // The same checks, but for the event's finality, which only a source reading the chain
    // (--rpc: the node's finalized block) can tell.
    const finality = "Attested event in a final block";
    expect(viaEvent.checks.map((c: { name: string }) => c.name)).toContain(finality);
    expect(verdict.checks).toEqual(
      viaEvent.checks.filter((c: { name: string }) => c.name !== finality),
    );

    const tampered = { ...proofOf("c-1"), balance: "1000" };
    const refused = await run("tampered", tampered, graphql);
    expect(refused.code).toBe(1);
    expect(
      JSON.parse(refused.out)
        .checks.filter((c: { ok: boolean }) => !c.ok)
        .map((c: { name: string }) => c.name),
    ).toEqual([
      "root hash matches the attested liabilitiesRoot",
      "root sum equals the attested liabilities",
    ]);

    const elsewhere = await run("other-block", { ...proofOf("c-0"), block: "1" }, graphql);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.out).toContain("no attestation for asset");
  }, 60_000);
});
