/**
 * A pool whose every statement's plan Postgres sends back as it ran it: `auto_explain` loaded in
 * each session, logging every statement at notice level, which pg hands to the client. Tests read
 * `plans` to check what a run's reads did (an index or a scan, the settings they ran under), and
 * `backends` (the same index) for the Postgres backend that ran each one.
 */
import { createPool, type Pool } from "../../../foundation/db.js";

export function createPlanTracingPool(
  databaseUrl: string,
  /** Also print the planner settings that differ from the defaults (`auto_explain.log_settings`). */
  options: { settings?: boolean } = {},
): { pool: Pool; plans: string[]; backends: number[] } {
  const plans: string[] = [];
  const backends: number[] = [];
  const url = new URL(databaseUrl);
  url.searchParams.set(
    "options",
    "-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0" +
      " -c auto_explain.log_level=notice" +
      (options.settings ? " -c auto_explain.log_settings=on" : ""),
  );
  const pool = createPool(url.toString(), { max: 2 });
  pool.on("connect", (client) =>
    client.on("notice", (n) => {
      plans.push(n.message ?? "");
      backends.push((client as unknown as { processID: number }).processID);
    }),
  );
  return { pool, plans, backends };
}
