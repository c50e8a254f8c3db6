/**
 * `custody-node recon breaks list` pages: `--limit` (default 200) and `--after` (the last identity
 * of the page before), as GET /v1/recon/breaks does. A list cut at its limit says so on stderr,
 * naming the `--after` that goes on (stdout stays the page alone, `--json` parseable), so an
 * operator never takes the first 200 breaks for all of them. The real CLI on real Postgres; the
 * runs and break states as the reconciler stores them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfigPath } from "../../foundation/config.js";
import { createTestDatabase, type TestDatabase } from "../../ops/testing/database.js";
import { spawnCli } from "../../ops/testing/process.js";

let db: TestDatabase;
let env: Record<string, string>;
beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, CUSTODY_CONFIG: defaultConfigPath, LOG_LEVEL: "silent" };
});
afterAll(async () => {
  await db?.drop();
});

const list = async (...args: string[]) => {
  const p = spawnCli(["recon", "breaks", "list", ...args], env);
  const { code } = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
};
/** The identities a (text) page printed: each line's last column. */
const identities = (out: string) =>
  out
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split("\t").at(-1)!);

/** `n` open breaks of chain 31337 first found by one new run: their identities. */
async function seed(tag: string, n: number): Promise<string[]> {
  const run = await db.pool.query<{ id: string }>(
    `INSERT INTO recon.runs (chain_id, block_number, mode, status, finished_at)
     VALUES (31337, 7, 'full', 'completed', now()) RETURNING id`,
  );
  const r = await db.pool.query<{ identity: string }>(
    `INSERT INTO recon.break_states (identity, chain_id, type, asset_id, key, state,
       first_run_id, last_run_id, last_difference)
     SELECT 'missing_credit|31337|31337:0x0|' || $2::text || '-' || g, 31337, 'missing_credit',
            '31337:0x0', $2::text || '-' || g, 'open', $1::bigint, $1::bigint, g
       FROM generate_series(1, $3) g RETURNING identity`,
    [run.rows[0]!.id, tag, n],
  );
  return r.rows.map((x) => x.identity);
}

describe("custody-node recon breaks list", () => {
  it("says on stderr when the default 200 cut the list, and how to get the next page", async () => {
    const seeded = await seed("many", 201);
    const first = await list();
    expect(first.code, first.err).toBe(0);
    const shown = identities(first.out);
    expect(shown).toHaveLength(200);
    expect(first.err).toContain(`--after '${shown.at(-1)}'`);

    const rest = await list("--after", shown.at(-1)!);
    expect(rest.code, rest.err).toBe(0);
    expect(rest.err).toBe("");
    expect([...shown, ...identities(rest.out)].sort()).toEqual([...seeded].sort());
  }, 60_000);

  it("pages with --limit and --after to the end, --json stays one JSON page", async () => {
    const all = identities((await list("--limit", "1000")).out);
    const pages: string[][] = [];
    let after: string[] = [];
    for (;;) {
      const page = await list("--limit", "90", "--json", ...after);
      expect(page.code, page.err).toBe(0);
      const rows = (JSON.parse(page.out) as { identity: string }[]).map((b) => b.identity);
      pages.push(rows);
      if (page.err === "") break;
      expect(page.err).toContain(`--after '${rows.at(-1)}'`);
      after = ["--after", rows.at(-1)!];
    }
    expect(pages.map((p) => p.length)).toEqual([90, 90, 21]);
    expect(pages.flat()).toEqual(all);
  }, 60_000);

  it("refuses a bad --limit and an --after that names no break", async () => {
    for (const bad of ["0", "1001", "ten"]) {
      const r = await list("--limit", bad);
      expect(r.code, bad).not.toBe(0);
      expect(r.err, bad).toContain("--limit: expected a page size of 1-1000");
    }
    const unknown = await list("--after", "missing_credit|31337|31337:0x0|no-such-break");
    expect(unknown.code).not.toBe(0);
    expect(unknown.err).toContain("--after: names no break");
    expect(unknown.out).toBe("");
  }, 60_000);
});
