-- Throughput (see ledger/ledger.bench.ts): balance updates are HOT updates when the page has room,
-- which saves two index insertions per updated account; seq needs no unique index of its own
-- (identity values are unique, and every read by seq goes through the per-account indexes).
ALTER TABLE ledger.accounts SET (fillfactor = 50);
ALTER TABLE ledger.transfers DROP CONSTRAINT transfers_seq_key;
