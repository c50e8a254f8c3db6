/**
 * A corpus of error strings as nodes return them from eth_sendRawTransaction / eth_estimateGas.
 * Sources: geth core/txpool errors, Nethermind AcceptTxResult, Erigon txpool discard reasons,
 * Besu TransactionInvalidReason messages, anvil pool errors, Arbitrum Nitro (geth-derived).
 */
import { describe, expect, it } from "vitest";
import { classifyNodeError, type NodeErrorClass, RESPONSES } from "./nodeErrors.js";

const corpus: [client: string, message: string, expected: NodeErrorClass][] = [
  // geth
  [
    "geth",
    "nonce too low: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F, tx: 4 state: 7",
    "nonce_too_low",
  ],
  ["geth", "nonce too high", "nonce_gap"],
  ["geth", "already known", "already_known"],
  ["geth", "replacement transaction underpriced", "replacement_underpriced"],
  ["geth", "transaction underpriced: tip needed 1000000000, tip permitted 100", "underpriced"],
  [
    "geth",
    "insufficient funds for gas * price + value: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F have 0 want 21000000000000",
    "insufficient_funds",
  ],
  ["geth", "intrinsic gas too low: gas 20000, minimum needed 21000", "intrinsic_gas_too_low"],
  ["geth", "tx fee (1.05 ether) exceeds the configured cap (1.00 ether)", "node_fee_cap"],
  [
    "geth",
    "max fee per gas less than block base fee: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F, maxFeePerGas: 1000 baseFee: 7000000",
    "underpriced",
  ],
  [
    "geth",
    "max priority fee per gas higher than max fee per gas: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F, maxPriorityFeePerGas: 3, maxFeePerGas: 2",
    "fee_cap_exceeded",
  ],
  ["geth", "execution reverted: ERC20: transfer amount exceeds balance", "execution_reverted"],
  ["geth", "known transaction: 0x3f2d2c4b0e1a", "already_known"],
  ["geth", "txpool is full", "transient"],
  ["geth", "exceeds block gas limit", "gas_limit_too_high"],
  ["geth", "header not found", "transient"],
  // Nethermind
  ["nethermind", "OldNonce, Current nonce: 7, nonce of rejected tx: 4", "nonce_too_low"],
  ["nethermind", "AlreadyKnown", "already_known"],
  ["nethermind", "NonceGap, Future nonce. Expected nonce: 7", "nonce_gap"],
  [
    "nethermind",
    "FeeTooLow, MaxFeePerGas too low. MaxFeePerGas: 1, BaseFee: 7, MaxPriorityFeePerGas:1, Block number: 9",
    "underpriced",
  ],
  ["nethermind", "FeeTooLowToCompete", "replacement_underpriced"],
  [
    "nethermind",
    "InsufficientFunds, Account balance: 0, cumulative cost: 21000000000000",
    "insufficient_funds",
  ],
  ["nethermind", "ReplacementNotAllowed", "replacement_underpriced"],
  ["nethermind", "GasLimitExceeded, Gas limit exceeds block gas limit", "gas_limit_too_high"],
  // Nethermind since its geth-style TxPoolErrorMessages (AcceptTxResult.GasLimitExceeded)
  ["nethermind", "gas limit reached", "gas_limit_too_high"],
  // Erigon
  ["erigon", "nonce too low", "nonce_too_low"],
  ["erigon", "replace underpriced", "replacement_underpriced"],
  ["erigon", "fee too low", "underpriced"],
  ["erigon", "insufficient funds", "insufficient_funds"],
  ["erigon", "intrinsic gas too low", "intrinsic_gas_too_low"],
  // DiscardReason GasLimitTooHigh behind the ImportResult name eth_sendRawTransaction prefixes
  ["erigon", "INVALID: gas limit is too high", "gas_limit_too_high"],
  // DiscardReason DuplicateHash and NotReplaced, likewise prefixed
  ["erigon", "INVALID: existing txn with same hash", "already_known"],
  ["erigon", "INVALID: could not replace existing tx", "replacement_underpriced"],
  // Besu
  ["besu", "Nonce too low", "nonce_too_low"],
  ["besu", "Known transaction", "already_known"],
  ["besu", "Replacement transaction underpriced", "replacement_underpriced"],
  ["besu", "Upfront cost exceeds account balance", "insufficient_funds"],
  ["besu", "Intrinsic gas exceeds gas limit", "intrinsic_gas_too_low"],
  ["besu", "Transaction fee cap exceeded", "node_fee_cap"],
  ["besu", "Gas price below configured minimum gas price", "underpriced"],
  ["besu", "Transaction nonce is too distant from current sender nonce", "nonce_gap"],
  ["besu", "Execution reverted", "execution_reverted"],
  // anvil
  ["anvil", "nonce too low", "nonce_too_low"],
  ["anvil", "transaction already imported", "already_known"],
  ["anvil", "Insufficient funds for gas * price + value", "insufficient_funds"],
  ["anvil", "max fee per gas less than block base fee", "underpriced"],
  ["anvil", "Out of gas: gas required exceeds allowance: 20000", "intrinsic_gas_too_low"],
  ["anvil", "execution reverted: custom error 0xfb8f41b2", "execution_reverted"],
  ["anvil", "replacement transaction underpriced", "replacement_underpriced"],
  ["anvil", "intrinsic gas too high -- tx.gas_limit > env.block.gas_limit", "gas_limit_too_high"],
  ["anvil", "intrinsic gas too low", "intrinsic_gas_too_low"],
  // Arbitrum Nitro
  [
    "arbitrum",
    "nonce too low: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F, tx: 12 state: 13",
    "nonce_too_low",
  ],
  [
    "arbitrum",
    "max fee per gas less than block base fee: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F, maxFeePerGas: 10000000 baseFee: 100000000",
    "underpriced",
  ],
  [
    "arbitrum",
    "insufficient funds for gas * price + value: balance 0, tx cost 2100000000000, overshot 2100000000000",
    "insufficient_funds",
  ],
  ["arbitrum", "intrinsic gas too low", "intrinsic_gas_too_low"],
  ["arbitrum", "already known", "already_known"],
  ["arbitrum", "429 Too Many Requests: rate limit exceeded", "transient"],
  // not something we know
  ["any", "the moon is made of cheese", "unknown"],
];

describe("classifyNodeError", () => {
  it("reaches every class it has a response for from some real node string", () => {
    const reached = new Set(corpus.map(([, message]) => classifyNodeError(message)));
    expect([...reached].sort()).toEqual(Object.keys(RESPONSES).sort());
  });

  it.each(corpus)("%s: %s -> %s", (_client, message, expected) => {
    expect(classifyNodeError(message)).toBe(expected);
  });

  it("finds the node's words inside wrapped errors (viem details/cause)", () => {
    const wrapped = {
      message: "Transaction creation failed.",
      shortMessage: "Transaction creation failed.",
      cause: { message: "RPC Request failed.", details: "replacement transaction underpriced" },
    };
    expect(classifyNodeError(wrapped)).toBe("replacement_underpriced");
  });

  it("documents a response for every class it returns", () => {
    for (const [, message] of corpus) expect(RESPONSES[classifyNodeError(message)]).toMatch(/\w/);
  });
});
