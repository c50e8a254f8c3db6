/**
 * Module commands for the CLI. Each module exports `registerCommands(program)` from its own
 * `cli.ts` and adds one line here.
 */
import type { Command } from "commander";
import { registerCommands as apiCommands } from "../api/cli.js";

export function registerModuleCommands(program: Command): void {
  apiCommands(program);
}
