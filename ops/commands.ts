/**
 * Module commands for the CLI. Each module exports `registerCommands(program)` from its own
 * `cli.ts` and adds one line here.
 */
import type { Command } from "commander";

export function registerModuleCommands(_program: Command): void {}
