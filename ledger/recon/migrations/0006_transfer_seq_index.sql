-- Reconciliation reads ledger.transfers by seq: the watermark (max(seq)), entries above the previous
-- run's watermark, the seq gaps among the newest values, and the gaps' rows. Without an index on seq
-- (dropped by ledger/migrations/0002_throughput.sql) each of these scans the whole table: seconds at
-- 10M transfers, on every incremental run. A plain (non-unique) btree makes max(seq) one index probe
-- and the range reads index scans; it costs one index insertion per transfer (ledger.bench.ts).
CREATE INDEX IF NOT EXISTS transfers_seq ON ledger.transfers (seq);
