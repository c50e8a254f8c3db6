// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// Public proof of reserves and liabilities, per asset and final block. The custody's reconciler
/// calls `attest` (through the signer, from a hot wallet) only for a block whose reconciliation has
/// no open unexplained break. Nothing is stored but the last attested block per asset: the event is
/// the record, indexed by the subgraph and the Ponder app, and a customer checks their Merkle-sum
/// inclusion proof against `liabilitiesRoot`.
contract ReservesAttestor {
    /// The only account allowed to attest (the custody's hot wallet for this chain).
    address public immutable attester;

    /// The last block attested per asset (token address; address(0) for the native coin).
    mapping(address => uint256) public lastAttestedBlock;

    /// asset: token address, address(0) for native. block: the final block the figures are for.
    /// reserves: on-chain balances of every custody address (hot, cold, deposit) at that block.
    /// liabilities: the sum of customer balances (equals the Merkle-sum root's sum).
    /// liabilitiesRoot: root hash of the Merkle-sum tree of customer balances.
    /// addressesRoot: Merkle root of the custody address list the reserves were read from.
    /// reportHash: keccak256 of the attestation report (the reconciliation run it was made from, the
    /// block, every custody address with its balance, the roots; ledger/attest/attest.ts reportOf).
    event Attested(
        address indexed asset,
        uint256 indexed block,
        uint256 reserves,
        uint256 liabilities,
        bytes32 liabilitiesRoot,
        bytes32 addressesRoot,
        bytes32 reportHash
    );

    error NotAttester(address caller);
    /// Attestations per asset move forward: an older or repeated block is refused.
    error BlockNotAfterLast(address asset, uint256 blockNumber, uint256 lastBlock);
    /// A block that is not yet mined cannot be final.
    error BlockInFuture(uint256 blockNumber, uint256 currentBlock);

    constructor(address attester_) {
        attester = attester_;
    }

    function attest(
        address asset,
        uint256 blockNumber,
        uint256 reserves,
        uint256 liabilities,
        bytes32 liabilitiesRoot,
        bytes32 addressesRoot,
        bytes32 reportHash
    ) external {
        if (msg.sender != attester) revert NotAttester(msg.sender);
        if (blockNumber >= block.number) revert BlockInFuture(blockNumber, block.number);
        uint256 last = lastAttestedBlock[asset];
        if (blockNumber <= last) revert BlockNotAfterLast(asset, blockNumber, last);
        lastAttestedBlock[asset] = blockNumber;
        emit Attested(asset, blockNumber, reserves, liabilities, liabilitiesRoot, addressesRoot, reportHash);
    }
}
