-- The address each configured hot wallet key (hotWallets[].kmsKeyId, as the config names it: key
-- id, ARN or alias) had when a signer first loaded it on the chain. A KMS alias can be moved to
-- another key; a signer restarted after that would serve the other key's address, which holds
-- none of the wallet's funds, requests or in-flight sends, while it reported the wallet served.
-- The signer refuses a key whose address is not the one recorded here (signer/hotWalletKeys.ts).
CREATE TABLE custody.hot_wallet_keys (
  chain_id   BIGINT NOT NULL,
  key_id     TEXT NOT NULL CHECK (length(key_id) > 0),
  address    TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, key_id)
);
