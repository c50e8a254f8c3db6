/**
 * The integration project runs its files without isolation (vitest.config.ts `isolate: false`):
 * a worker process runs one file after another, so a pool, socket, child process or timer a file
 * leaves open runs on into the next file, whose failures then name the wrong file. Run as the
 * integration project's setup file: its afterAll (which may start beside the file's own) fails the
 * file when the process still holds more of any kind of resource than when the file started, once
 * the file's closes have had SETTLE_MS to finish.
 */
import { afterAll, inject } from "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /**
     * SETTLE_MS for a project whose files open no fetch connection (the check's own fixtures,
     * ops/testing/fixtures/leaks): their closes finish at once, so a leak shows as soon as waited for.
     */
    handleLeaksSettleMs?: number;
  }
}

/** Open resources by kind (`process.getActiveResourcesInfo()`: TCPSocketWrap, Timeout, ProcessWrap…). */
type ResourceCounts = Map<string, number>;

function countResources(kinds: readonly string[]): ResourceCounts {
  const counts: ResourceCounts = new Map();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** The kinds held more of now than before, as "kind ×extra". */
function grownResources(before: ResourceCounts, now: ResourceCounts): string[] {
  return [...now]
    .filter(([kind, n]) => n > (before.get(kind) ?? 0))
    .map(([kind, n]) => `${kind} ×${n - (before.get(kind) ?? 0)}`)
    .sort();
}

/**
 * Closes finish after afterAll returns: a socket's close event, and fetch's idle keep-alive
 * connections (undici closes them after 4 s). Longer than that is a leak.
 */
const SETTLE_MS = inject("handleLeaksSettleMs") ?? 10_000;
const POLL_MS = 100;

const current = () => countResources(process.getActiveResourcesInfo());

/** Per kind, the fewer of two counts: a kind missing from either counts as none. */
function fewest(a: ResourceCounts, b: ResourceCounts): ResourceCounts {
  const out: ResourceCounts = new Map();
  for (const [kind, n] of a) {
    const m = Math.min(n, b.get(kind) ?? 0);
    if (m > 0) out.set(kind, m);
  }
  return out;
}

/**
 * What the process held once the previous file of this worker had settled (the setup file runs
 * again before every file; globalThis is the worker's). A count taken as a file starts may also
 * hold what is only passing through (a console flush, a close still under way), which would hide a
 * leak of the same kind: the file is held to the fewer of the two.
 */
const SETTLED = Symbol.for("custody-node.test.settledResources");
const carried = globalThis as { [SETTLED]?: ResourceCounts };

// Taken here, before the file is imported: inside a hook, vitest's own timeout timer is running.
const atStart = current();
const baseline = carried[SETTLED] ? fewest(atStart, carried[SETTLED]) : atStart;

afterAll(async () => {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const now = current();
    const grown = grownResources(baseline, now);
    if (grown.length === 0) {
      carried[SETTLED] = now;
      return;
    }
    if (Date.now() >= deadline)
      throw new Error(
        `this file left open ${grown.join(", ")} (${SETTLE_MS / 1000} s after its tests and hooks): close ` +
          "what it opens in afterAll; the next file of this worker process would inherit it " +
          "(vitest.config.ts, integration project, isolate: false)",
      );
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}, SETTLE_MS + 5_000);
