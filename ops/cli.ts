/**
 * The `custody-node` command line. Module commands (keys, ledger check, reconcile, …) are
 * registered by the modules through ops/commands.ts.
 *
 * What a command runs is imported when it runs (`await import(...)` in its action, and only the
 * module commands it needs, ops/commands.ts): loading every module costs seconds of CPU per
 * start, and the tests start this CLI often. Help lists every command, as before.
 */
import { Command, CommanderError, Option } from "commander";
import { ConfigError } from "../foundation/errors.js";
import { parseRoles, ROLE_NAMES } from "../foundation/roles.js";
import { registerModuleCommands } from "./commands.js";

/** The commands this file defines (the rest come from the modules). */
const OWN_COMMANDS = ["start", "migrate", "dev"];

/** The service's config, as every command reads it (foundation's loader with the chain schema). */
async function loadServiceConfig() {
  const [{ chainSchema }, { loadConfig }] = await Promise.all([
    import("../chains/index.js"),
    import("../foundation/config.js"),
  ]);
  return loadConfig(chainSchema);
}

/**
 * The CLI. `command`, the first argument (argv[2]), lets it register only what that command needs;
 * without it (or for help, an option, an unknown name) every command is there.
 */
export async function buildCli(command?: string): Promise<Command> {
  const program = new Command("custody-node")
    .description("Custody of customers' crypto on EVM chains")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("start")
    .description(
      "run the service: the given roles (default all) for the given chains (default all)",
    )
    .addOption(
      new Option("--roles <roles>", `comma-separated roles: ${ROLE_NAMES.join(", ")}`).argParser(
        (v) => v,
      ),
    )
    .option("--chains <chains>", "comma-separated chain keys or ids from the config (default: all)")
    .option("--migrate", "apply database migrations before starting", false)
    .action(async (opts: { roles?: string; chains?: string; migrate: boolean }) => {
      const config = await loadServiceConfig();
      const [{ ensureDatabase }, { startService }] = await Promise.all([
        import("./devstack/services.js"),
        import("./start.js"),
      ]);
      // Like `custody-node migrate`: a database that does not exist yet is created first.
      if (opts.migrate) await ensureDatabase(config.env.DATABASE_URL);
      await startService(config, {
        roles: parseRoles(opts.roles),
        chains: parseChainList(opts.chains),
        migrate: opts.migrate,
        handleSignals: true,
      });
    });

  program
    .command("migrate")
    .description(
      "apply every module's database migrations (idempotent; safe from several processes)",
    )
    .action(async () => {
      const config = await loadServiceConfig();
      const [{ ensureDatabase }, { migrate }] = await Promise.all([
        import("./devstack/services.js"),
        import("./migrate.js"),
      ]);
      await ensureDatabase(config.env.DATABASE_URL);
      const results = await migrate(config.env.DATABASE_URL, { log: (m) => console.log(m) });
      const applied = results.reduce((n, r) => n + r.applied.length, 0);
      console.log(applied === 0 ? "schema up to date" : `applied ${applied} migration(s)`);
    });

  program
    .command("dev")
    .description(
      "one command from nothing to a local service: anvil chains, Postgres, Redis, the KMS emulator, a funded hot wallet (booked), the factory, an admin key printed once; then every role in the foreground (Ctrl-C stops it; run again to reuse it all)",
    )
    .option("--dir <dir>", "where dev keeps its config, KMS keys and chain state", ".dev")
    .action(async (opts: { dir: string }) => {
      const { runDev } = await import("./dev.js");
      const dev = await runDev({ dir: opts.dir });
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
      console.log("[dev] stopping");
      await dev.stop();
      console.log("[dev] stopped");
    });

  if (command === undefined || !OWN_COMMANDS.includes(command))
    await registerModuleCommands(program, command);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    // argv is node's: [node, script, command, ...]; the program has no options of its own but help.
    const program = await buildCli(argv[2]);
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exit(error.exitCode);
    }
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main(process.argv);
}

/**
 * `--chains a,b`: the chain keys or ids named. Given but naming none (`--chains " "`, `--chains ,`)
 * is an error, not "every chain": a task meant for one chain would otherwise run them all.
 */
function parseChainList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const keys = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (keys.length === 0)
    throw new Error(
      "--chains: no chain named (comma-separated chain keys or ids; leave the option out for every chain)",
    );
  return keys;
}
