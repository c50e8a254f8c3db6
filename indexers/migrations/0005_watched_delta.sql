-- The watched set reads only recently created custody addresses when a notification names a chain
-- but not its addresses (indexers/watched.ts): by creation time, per chain.
CREATE INDEX custody_addresses_created ON chain.custody_addresses (chain_id, created_at);
