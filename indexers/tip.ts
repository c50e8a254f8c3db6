/**
 * The indexer's stored tip: the last ingested block. Its own file so store.ts (which reads and
 * writes it) and errors.ts (whose TipMovedError names two) both import it without importing each other.
 */
export type Tip = { number: bigint; hash: string };
