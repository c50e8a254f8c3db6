/**
 * Readiness checks registered by every role (Postgres, Redis, RPC, indexer lag, …).
 * Liveness is the process answering at all (/healthz, served before any dependency is reached);
 * readiness is "this process can serve its roles": every check passing. A check may pass as
 * `degraded` (an indexer catching up: live, serving, and visible in /readyz's checks, not failed).
 */
export type HealthCheckResult = {
  ok: boolean;
  /** Passing, but worth a look (shown in /readyz and counted; it does not fail readiness). */
  degraded?: boolean;
  detail?: string;
};
export type HealthCheck = { name: string; check: () => Promise<HealthCheckResult> };

export type Health = {
  add: (check: HealthCheck) => void;
  run: () => Promise<{
    ok: boolean;
    /** Names of the passing checks that report `degraded`. */
    degraded: string[];
    checks: Record<string, HealthCheckResult>;
  }>;
};

export function createHealth(timeoutMs = 2000): Health {
  const checks: HealthCheck[] = [];
  return {
    add: (check) => {
      checks.push(check);
    },
    async run() {
      const results: Record<string, HealthCheckResult> = {};
      await Promise.all(
        checks.map(async ({ name, check }) => {
          let timer: NodeJS.Timeout | undefined;
          try {
            results[name] = await Promise.race([
              check(),
              new Promise<HealthCheckResult>((resolve) => {
                timer = setTimeout(
                  () => resolve({ ok: false, detail: `timed out after ${timeoutMs} ms` }),
                  timeoutMs,
                );
              }),
            ]);
          } catch (error) {
            results[name] = { ok: false, detail: (error as Error).message };
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      return {
        ok: Object.values(results).every((r) => r.ok),
        degraded: Object.entries(results)
          .filter(([, r]) => r.ok && r.degraded)
          .map(([name]) => name),
        checks: results,
      };
    },
  };
}
