-- Room on each page for the next version of a row (issue 15). An incremental run rewrites the row
-- of every active deposit address in recon.onchain_balances (balance and block read) and in
-- recon.expected_fact_balances (balance): 10,000 rows for a block of 10,000 transfers. Neither
-- updated column is indexed, so with free space on the page the update is a heap-only (HOT) one
-- and leaves the (chain_id, address, asset) key alone; on full pages (fillfactor 100) every update
-- also inserted a key. Measured on copies of the table at 10,000 rows (load average ~8): the upsert
-- of 10,000 rows 297-390 ms at fillfactor 100 (0.2% HOT), 196-253 ms at 70 (66% HOT). 50 leaves
-- room for a second version while the first waits to be pruned. Applies to pages written from now
-- on (a full run rewrites recon.expected_fact_balances; VACUUM FULL rewrites a table at once).
ALTER TABLE recon.onchain_balances SET (fillfactor = 50);
ALTER TABLE recon.expected_fact_balances SET (fillfactor = 50);
