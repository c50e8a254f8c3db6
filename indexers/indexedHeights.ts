import type pg from "pg";

type Queryable = Pick<pg.ClientBase, "query">;

/** How far each chain is indexed: chain id -> the last ingested block (its checkpoint). */
export async function indexedHeights(client: Queryable): Promise<Map<number, bigint>> {
  const { rows } = await client.query<{ chain_id: string; block_number: string }>(
    `SELECT chain_id, block_number FROM chain.checkpoints`,
  );
  return new Map(rows.map((r) => [Number(r.chain_id), BigInt(r.block_number)]));
}
