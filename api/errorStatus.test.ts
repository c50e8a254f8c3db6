/**
 * docs/errors.md's HTTP column against what the error handler answers (api/app.ts). A row whose
 * HTTP cell starts with a status is a code the API answers with that status; a row without one
 * (start-up, CLI, signer, worker, log) is not an API answer; `(console)` statuses are the console's
 * own pages, answered there. Every code the handler's tables map must have a row giving the same
 * status, and every status the doc gives must be the one the handler answers (a code it does not
 * map gets the handler's default).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  errorStatus,
  fastifyErrors,
  frameworkClientErrors,
  frameworkErrorProblems,
  handlerStatus,
  statusOfCode,
  uncodedClientErrors,
} from "./app.js";
import { problemResponses } from "./schemas.js";

type DocRow = { code: string; cell: string; status: number | null; console: boolean };

function docRows(): DocRow[] {
  const text = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
  return [...text.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|/gm)].map(([, code, raw]) => {
    const cell = raw!.trim();
    const status = /^([1-5][0-9]{2})\b/.exec(cell)?.[1];
    return {
      code: code!,
      cell,
      status: status === undefined ? null : Number(status),
      console: cell.includes("(console)"),
    };
  });
}

/** Every code the handler's tables answer and its status; two tables disagreeing are listed. */
function handlerTables(): { answered: Map<string, number>; conflicts: string[] } {
  const answered = new Map<string, number>();
  const conflicts: string[] = [];
  const entries: [string, number][] = [
    ...Object.entries(errorStatus),
    ...Object.entries(handlerStatus),
    ...Object.values(fastifyErrors).map((e): [string, number] => [e.code, e.status]),
    ...Object.values(frameworkErrorProblems).map((e): [string, number] => [e.code, e.status]),
    ...Object.values(frameworkClientErrors).map((e): [string, number] => [e.code, e.status]),
    ...Object.values(uncodedClientErrors).map((e): [string, number] => [e.code, e.status]),
  ];
  for (const [code, status] of entries) {
    const seen = answered.get(code);
    if (seen !== undefined && seen !== status) conflicts.push(`${code}: ${seen} and ${status}`);
    answered.set(code, status);
  }
  return { answered, conflicts };
}

describe("docs/errors.md and the API's statuses", () => {
  const rows = docRows();
  const { answered, conflicts } = handlerTables();

  it("reads the doc's table", () => {
    // The parser must find the table (a reformatted doc would otherwise check nothing).
    expect(rows.length).toBeGreaterThan(90);
    expect(rows.find((r) => r.code === "AUTH_REQUIRED")?.status).toBe(401);
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length);
  });

  it("the handler's tables give each code one status", () => {
    expect(conflicts).toEqual([]);
  });

  it("every status the doc gives is the one the API answers", () => {
    const disagree = rows
      .filter((r) => r.status !== null && !r.console)
      .map((r) => ({ r, api: answered.get(r.code) ?? statusOfCode(r.code) }))
      .filter(({ r, api }) => api !== r.status)
      .map(({ r, api }) => `${r.code}: doc "${r.cell}", api ${api}`);
    expect(disagree).toEqual([]);
  });

  it("every code the API maps has a doc row giving that status", () => {
    const byCode = new Map(rows.map((r) => [r.code, r]));
    const disagree = [...answered]
      .filter(([code, status]) => byCode.get(code)?.status !== status)
      .map(
        ([code, status]) => `${code}: api ${status}, doc "${byCode.get(code)?.cell ?? "(no row)"}"`,
      );
    expect(disagree).toEqual([]);
  });

  it("the OpenAPI 502 and 503 answers name every code the API answers with that status", () => {
    const unnamed = [...answered]
      .filter(([, status]) => status === 502 || status === 503)
      .filter(([code, status]) => {
        const schema = problemResponses[status as 502 | 503] as { description?: string };
        const described = schema.description ?? "";
        return !new RegExp(`\\b${code}\\b`).test(described);
      })
      .map(([code, status]) => `${code} (${status})`);
    expect(unnamed).toEqual([]);
  });
});
