/**
 * `custody-node contracts deploy --chain <argv[3]>` (argv[2] `contracts`) or `custody-node por
 * deploy` (argv[2] `por`) for kill -9 tests: the same body as the CLI (deployFromHotWallet), with
 * SIGNER_CRASH_AT=deploy_after_commit:1 or deploy_after_send:1 killing it there.
 */
import { deployReservesAttestor } from "../../ledger/attest/deploy.js";
import { parseCrashAt } from "../broadcaster/crashPoints.js";
import { deployForwarderFactory } from "../deposit-addresses/deployFactory.js";
import { deployFromHotWallet } from "../hotWalletDeploy.js";

const [which, chain] = process.argv.slice(2);
if ((which !== "contracts" && which !== "por") || !chain)
  throw new Error("usage: deployProcess.ts contracts|por <chain>");
await deployFromHotWallet(
  { chain },
  which === "contracts"
    ? {
        command: "contracts deploy",
        contractName: "ForwarderFactory",
        walletRole: "hot wallet",
        deploy: deployForwarderFactory,
        crashAt: parseCrashAt(process.env.SIGNER_CRASH_AT),
      }
    : {
        command: "por deploy",
        contractName: "ReservesAttestor",
        walletRole: "attester",
        deploy: deployReservesAttestor,
        crashAt: parseCrashAt(process.env.SIGNER_CRASH_AT),
      },
);
