/**
 * `custody-node por verify proof.json (--graphql <url> | --rpc <url> --contract <address> | --root <hash> …)`: checks a
 * customer's liabilities proof (from GET /v1/customers/{id}/liabilities-proof) against the root a
 * dApp reads, and that reserves cover liabilities (with --rpc, also that the Attested event is in a
 * block the node has finalized, and a notice, not a failed check, when the attestor has attested
 * the asset at a later block). Exit 0 verified, 1 a check failed (each check
 * printed, the failed ones first), 2 the proof or the source could not be read.
 * `custody-node por page`: serves the static verifier page (verifier.html + verify.js).
 * `custody-node por deploy --chain X`: deploys the chain's ReservesAttestor (ledger/attest/deploy.ts).
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { configAddressProblem } from "../../foundation/config.js";
import { deployReservesAttestor } from "../../ledger/attest/deploy.js";
import { deployFromHotWallet } from "../../signer/hotWalletDeploy.js";
import {
  type AttestationFromSource,
  attestationFromFlags,
  attestationFromGraphql,
  attestationFromRpc,
} from "./attestationSource.js";
import { servePorPage } from "./page.js";
import { ProofFormatError, type VerifyResult, verifyProof } from "./verify.js";

type VerifyOpts = {
  graphql?: string;
  rpc?: string;
  contract?: string;
  root?: string;
  liabilities?: string;
  reserves?: string;
  json?: boolean;
};

export function formatVerdict(
  result: VerifyResult,
  source: string,
  notices: readonly string[] = [],
): string {
  const failed = result.checks.filter((c) => !c.ok);
  const lines = [
    result.ok
      ? `VERIFIED against ${source}`
      : `NOT VERIFIED against ${source}: ${failed.map((c) => c.name).join("; ")}`,
  ];
  for (const c of [...failed, ...result.checks.filter((x) => x.ok)])
    lines.push(`  ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  for (const n of notices) lines.push(`  note ${n}`);
  return lines.join("\n");
}

export async function runPorVerify(
  file: string,
  opts: VerifyOpts,
): Promise<{ code: 0 | 1 | 2; out: string }> {
  let proof: unknown;
  try {
    proof = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    return { code: 2, out: `cannot read proof ${file}: ${(error as Error).message}` };
  }
  const sources = [opts.graphql, opts.rpc, opts.root].filter((s) => s !== undefined);
  if (sources.length !== 1)
    return { code: 2, out: "give exactly one of --graphql <url>, --rpc <url> or --root <hash>" };
  if (opts.rpc !== undefined && opts.contract === undefined)
    return {
      code: 2,
      out: "--rpc needs --contract <address>: the custodian's published ReservesAttestor (a proof's own contract is not evidence)",
    };
  // The address a customer copied from the custodian's publication: a mistyped character read as
  // another address found "no Attested event" there, as if the custodian had not attested.
  const contractProblem =
    opts.contract !== undefined ? configAddressProblem(opts.contract) : undefined;
  if (contractProblem) return { code: 2, out: `--contract ${opts.contract}: ${contractProblem}` };
  let attestation: AttestationFromSource;
  try {
    attestation = opts.graphql
      ? await attestationFromGraphql(opts.graphql, proof)
      : opts.rpc
        ? await attestationFromRpc(opts.rpc, proof, opts.contract)
        : attestationFromFlags({
            root: opts.root!,
            liabilities: opts.liabilities,
            reserves: opts.reserves,
          });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      code: 2,
      out: `cannot read the attestation: ${error instanceof ProofFormatError ? message : `${message}`}`,
    };
  }
  const result = verifyProof(proof, attestation);
  // Notices change no verdict or exit code (e.g. a later attestation exists: see attestationSource).
  const notices = attestation.notices ?? [];
  const out = opts.json
    ? JSON.stringify({ ...result, source: attestation.source, notices }, null, 2)
    : formatVerdict(result, attestation.source, notices);
  return { code: result.ok ? 0 : 1, out };
}

export function registerCommands(program: Command): void {
  const por = program
    .command("por")
    .description("proof of reserves and liabilities: verify a customer's proof");
  por
    .command("verify")
    .description(
      "check a liabilities proof (JSON from GET /v1/customers/{id}/liabilities-proof) against the attested root, and reserves >= liabilities",
    )
    .argument("<proof.json>", "the proof file")
    .option(
      "--graphql <url>",
      "read the attestation from a GraphQL endpoint (Ponder app or subgraph)",
    )
    .option("--rpc <url>", "read the Attested event from the chain over JSON-RPC")
    .option(
      "--contract <address>",
      "with --rpc (required): the custodian's published ReservesAttestor; a proof naming another fails 'same contract'",
    )
    .option(
      "--root <hash>",
      "check against this liabilitiesRoot (with --liabilities and --reserves)",
    )
    .option("--liabilities <amount>", "with --root: the attested liabilities (base units)")
    .option("--reserves <amount>", "with --root: the attested reserves (base units)")
    .option("--json", "print the result as JSON")
    .action(async (file: string, opts: VerifyOpts) => {
      const { code, out } = await runPorVerify(file, opts);
      if (code === 2) console.error(out);
      else console.log(out);
      process.exitCode = code;
    });
  por
    .command("deploy")
    .description(
      "deploy the ReservesAttestor with the chain's hot wallet (KMS) as attester and record it; run it before the signer sends for that wallet",
    )
    .requiredOption("--chain <chain>", "chain key or id from the config")
    .option(
      "--key <kmsKeyId>",
      "hot wallet KMS key (default: the chain's first hot wallet not retiring)",
    )
    .action((opts: { chain: string; key?: string }) =>
      deployFromHotWallet(opts, {
        command: "por deploy",
        contractName: "ReservesAttestor",
        walletRole: "attester",
        deploy: deployReservesAttestor,
      }),
    );
  por
    .command("page")
    .description("serve the static verifier page (verifier.html and verify.js) on loopback")
    .option("--port <port>", "port (0: any free one)", "8090")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .action(async (opts: { port: string; host: string }) => {
      const page = await servePorPage({ port: Number(opts.port), host: opts.host });
      console.log(`verifier page at ${page.url}/ (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
      await page.close();
    });
}
