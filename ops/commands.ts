/**
 * Module commands for the CLI. Each module exports `registerCommands(program)` from its own
 * `cli.ts` and adds one entry here, naming the top-level commands it registers.
 *
 * A module's `cli.ts` is imported only when one of its commands runs (or for help and unknown
 * commands, when all are): importing every module costs seconds of CPU per start (viem, Fastify,
 * the KMS SDK, BullMQ), and a command needs its own module only. `ops/commands.test.ts` checks
 * that each entry's `commands` are exactly what its `register` adds.
 */

import type { Command } from "commander";

export type ModuleCommands = {
  /** The top-level command names `register` adds (or extends, like `ledger`). */
  commands: readonly string[];
  register: (program: Command) => Promise<void>;
};

/** In registration order: the order `custody-node --help` lists them. */
export const MODULE_COMMANDS: readonly ModuleCommands[] = [
  {
    commands: ["withdrawals", "apikeys"],
    register: async (program) => (await import("../api/cli.js")).registerCommands(program),
  },
  {
    commands: ["chains"],
    register: async (program) => (await import("../indexers/cli.js")).registerCommands(program),
  },
  {
    commands: ["contracts"],
    register: async (program) =>
      (await import("../signer/deposit-addresses/cli.js")).registerContractsCommands(program),
  },
  {
    commands: ["deposit-address"],
    register: async (program) =>
      (await import("../indexers/depositAddresses/cli.js")).registerCommands(program),
  },
  {
    commands: ["ledger", "treasury"],
    register: async (program) => {
      const [{ registerCommands }, { signerTransactions }, { checkChainTokens }] =
        await Promise.all([
          import("../ledger/cli.js"),
          // The signer's reads of its own transactions (signer/requests.ts), without the signer role.
          import("../signer/requests.js"),
          // The start's token check, before a treasury command stores the chain's assets.
          import("./tokenConfig.js"),
        ]);
      registerCommands(program, { signerTransactions, checkTokens: checkChainTokens });
    },
  },
  {
    commands: ["ledger"],
    register: async (program) =>
      (await import("../ledger/parkedCli.js")).registerParkedCommands(program),
  },
  {
    commands: ["recon", "audit", "reconcile"],
    register: async (program) => {
      const [{ registerCommands }, { adapterPerChain }, { sweepReader }] = await Promise.all([
        import("../ledger/recon/cli.js"),
        import("../chains/index.js"),
        // The signer's SweepReader (what signer/sweeps/index.ts exports), without the sweeps role.
        import("../signer/sweeps/sweepReads.js"),
      ]);
      registerCommands(program, {
        sweeps: sweepReader,
        chains: (common) => adapterPerChain(common),
      });
    },
  },
  {
    commands: ["por"],
    register: async (program) => (await import("./por/cli.js")).registerCommands(program),
  },
  {
    commands: ["keys", "kms-local", "tx-requests"],
    register: async (program) => (await import("../signer/cli.js")).registerCommands(program),
  },
];

/**
 * Registers the module commands: only the modules that register `command` when it is one of
 * theirs, otherwise (no command, `help`, an option, an unknown name) all of them, so help and
 * commander's "unknown command" suggestions see every command.
 */
export async function registerModuleCommands(program: Command, command?: string): Promise<void> {
  const known = command !== undefined && MODULE_COMMANDS.some((m) => m.commands.includes(command));
  for (const m of MODULE_COMMANDS) {
    if (!known || m.commands.includes(command)) await m.register(program);
  }
}
