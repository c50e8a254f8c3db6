/**
 * The `custody-node` command line. Module commands (keys, ledger check, reconcile, …) are
 * registered by the modules through ops/commands.ts.
 */
import { Command, CommanderError, Option } from "commander";
import { chainSchema } from "../chains/index.js";
import { loadConfig } from "../foundation/config.js";
import { ConfigError } from "../foundation/errors.js";
import { parseRoles, ROLE_NAMES } from "../foundation/roles.js";
import { registerModuleCommands } from "./commands.js";
import { runDev } from "./dev.js";
import { ensureDatabase } from "./devstack/services.js";
import { migrate } from "./migrate.js";
import { startService } from "./start.js";

export function buildCli(): Command {
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
      const config = loadConfig(chainSchema);
      // Like `custody-node migrate`: a database that does not exist yet is created first.
      if (opts.migrate) await ensureDatabase(config.env.DATABASE_URL);
      await startService(config, {
        roles: parseRoles(opts.roles),
        chains: opts.chains
          ?.split(",")
          .map((s) => s.trim())
          .filter(Boolean),
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
      const config = loadConfig(chainSchema);
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
      const dev = await runDev({ dir: opts.dir });
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
      console.log("[dev] stopping");
      await dev.stop();
      console.log("[dev] stopped");
    });

  registerModuleCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCli();
  try {
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
