/**
 * Module commands for the CLI. Each module exports `registerCommands(program)` from its own
 * `cli.ts` and adds one line here.
 */

import type { Command } from "commander";
import { registerCommands as apiCommands } from "../api/cli.js";
import { adapterPerChain } from "../chains/index.js";
import { registerCommands as chainCommands } from "../indexers/cli.js";
import { registerCommands as depositAddressCommands } from "../indexers/depositAddresses/cli.js";
import { registerCommands as ledgerCommands } from "../ledger/cli.js";
import { registerParkedCommands } from "../ledger/parkedCli.js";
import { registerCommands as reconCommands } from "../ledger/recon/cli.js";
import { registerCommands as signerCommands } from "../signer/cli.js";
import { registerContractsCommands as contractsCommands } from "../signer/deposit-addresses/cli.js";
import { sweepReader } from "../signer/sweeps/index.js";
import { registerCommands as porCommands } from "./por/cli.js";

export function registerModuleCommands(program: Command): void {
  apiCommands(program);
  chainCommands(program);
  contractsCommands(program);
  depositAddressCommands(program);
  ledgerCommands(program);
  registerParkedCommands(program);
  reconCommands(program, { sweeps: sweepReader, chains: (common) => adapterPerChain(common) });
  porCommands(program);
  signerCommands(program);
}
