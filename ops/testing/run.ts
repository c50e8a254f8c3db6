/**
 * The pid of the vitest run (vitest.config.ts passes it to its workers and the processes they
 * start): its test databases carry it as their owner and its globalSetup's teardown drops them all
 * (ops/testing/database.ts). Unset outside a run (simulations, benches): each database is dropped
 * when its owner is done with it.
 */
export const TEST_RUN_PID_ENV = "CUSTODY_TEST_RUN_PID";

export function testRunPid(): number | undefined {
  const pid = Number(process.env[TEST_RUN_PID_ENV]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
