-- A confirmed attestation is followed until its block is final (DESIGN "Finality and bad days"): a
-- reorg above the finalized height can take its transaction out after its gas was booked. Then the
-- gas booking is reversed and the attestation is `requested` again (not served as confirmed) until
-- the signer's same bytes mine again; its gas is booked anew under the signer's reorg count.
--   fee                the gas booked for the mined transaction (what a reversal gives back)
--   booked_generation  the signer's reorg count when booked: 0 `fee:<chain>:<tx>`, n `…:g<n>`
--   final_at           when the signer reported it finalized (no longer followed); a `failed`
--                      attestation is final when settled (the signer fails only at a final block)
ALTER TABLE attest.attestations
  ADD COLUMN fee NUMERIC(78, 0) CHECK (fee >= 0),
  ADD COLUMN booked_generation INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN final_at TIMESTAMPTZ;

-- Attestations settled before this migration: their gas as the ledger booked it (generation 0).
UPDATE attest.attestations a SET fee = t.amount
  FROM ledger.transfers t
 WHERE a.tx_hash IS NOT NULL AND t.kind = 'fee' AND t.chain_id = a.chain_id
   AND t.tx_hash = a.tx_hash AND t.position = 'fee' AND t.reverses_id IS NULL;
UPDATE attest.attestations SET final_at = now() WHERE status = 'failed';

CREATE INDEX attestations_unfinal ON attest.attestations (chain_id) WHERE status = 'confirmed' AND final_at IS NULL;
