/**
 * The subgraph (../custody/schema.graphql) and the Ponder app (ponder.schema.ts) serve the same
 * entities with the same field names, types and nullability, so a dApp's query works against
 * either. Entity `WalletTransfer` is Ponder's export `walletTransfer` (its GraphQL type name).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { requireSubgraphsInstall, subgraphsRoot } from "../testing/install.js";

type Field = { type: string; nonNull: boolean };

/** The Graph's scalar → the Ponder column type that stores the same values. */
const PONDER_TYPE: Record<string, string> = {
  ID: "PgText",
  String: "PgText",
  Bytes: "PgHex",
  BigInt: "PgEvmBigint",
  Int: "PgInteger",
};

let subgraph: Map<string, Map<string, Field>>;
let ponder: Map<string, Map<string, Field & { primary: boolean }>>;

beforeAll(async () => {
  requireSubgraphsInstall();
  const { parse, Kind } = await import("graphql");
  const doc = parse(readFileSync(path.join(subgraphsRoot, "custody", "schema.graphql"), "utf8"));
  subgraph = new Map();
  for (const def of doc.definitions) {
    if (def.kind !== Kind.OBJECT_TYPE_DEFINITION) continue;
    if (!def.directives?.some((d) => d.name.value === "entity")) continue;
    const fields = new Map<string, Field>();
    for (const f of def.fields ?? []) {
      const nonNull = f.type.kind === Kind.NON_NULL_TYPE;
      const inner = f.type.kind === Kind.NON_NULL_TYPE ? f.type.type : f.type;
      if (inner.kind !== Kind.NAMED_TYPE)
        throw new Error(`${def.name.value}.${f.name.value}: lists are not mapped yet`);
      fields.set(f.name.value, { type: inner.name.value, nonNull });
    }
    subgraph.set(def.name.value, fields);
  }
  const { getTableColumns } = await import("drizzle-orm");
  const tables = (await import("./ponder.schema.js")) as Record<string, unknown>;
  ponder = new Map();
  for (const [name, table] of Object.entries(tables)) {
    const columns = new Map<string, Field & { primary: boolean }>();
    for (const [key, column] of Object.entries(getTableColumns(table as never)))
      columns.set(key, {
        type: (column as { columnType: string }).columnType,
        nonNull: (column as { notNull: boolean }).notNull,
        primary: (column as { primary: boolean }).primary,
      });
    ponder.set(name, columns);
  }
});

const ponderName = (entity: string) => entity[0]!.toLowerCase() + entity.slice(1);

describe("subgraph and Ponder schemas", () => {
  it("have the same entities", () => {
    expect([...subgraph.keys()].map(ponderName).sort()).toEqual([...ponder.keys()].sort());
    expect(subgraph.size).toBe(4);
  });

  it("agree entity by entity: field names, types, nullability, id", () => {
    for (const [entity, fields] of subgraph) {
      const table = ponder.get(ponderName(entity))!;
      expect([...table.keys()], entity).toEqual([...fields.keys()]);
      for (const [name, field] of fields) {
        const column = table.get(name)!;
        expect(
          { type: column.type, nonNull: column.nonNull, primary: column.primary },
          `${entity}.${name}`,
        ).toEqual({
          type: PONDER_TYPE[field.type],
          nonNull: field.nonNull,
          primary: name === "id",
        });
      }
    }
  });
});
