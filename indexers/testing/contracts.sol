// SPDX-License-Identifier: MIT
// Test-only contracts for the indexer tests and benchmark (never deployed outside a local anvil).
pragma solidity ^0.8.20;

contract TestToken {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }

    // A batch payout: one Transfer per recipient, in order (fact identity tests).
    function batchTransfer(address[] calldata to, uint256[] calldata values) external {
        for (uint256 i = 0; i < to.length; i++) {
            require(balanceOf[msg.sender] >= values[i], "balance");
            balanceOf[msg.sender] -= values[i];
            balanceOf[to[i]] += values[i];
            emit Transfer(msg.sender, to[i], values[i]);
        }
    }

    // A best-effort payout: pays each recipient the sender can still cover and skips the others
    // (no revert), so the same signed tx re-executed on other state emits other Transfer logs: a
    // deposit in it comes back at another ordinal (reorg-return tests).
    function payout(address[] calldata to, uint256[] calldata values) external {
        for (uint256 i = 0; i < to.length; i++) {
            if (balanceOf[msg.sender] < values[i]) continue;
            balanceOf[msg.sender] -= values[i];
            balanceOf[to[i]] += values[i];
            emit Transfer(msg.sender, to[i], values[i]);
        }
    }

    // Benchmark seeding: n Transfer events (value 1) to base+((start+i) % modulo), no state change,
    // so one transaction emits thousands of logs cheaply.
    function spray(uint160 base, uint256 start, uint256 n, uint256 modulo) external {
        for (uint256 i = 0; i < n; i++) {
            emit Transfer(msg.sender, address(base + uint160((start + i) % modulo)), 1);
        }
    }
}

contract Forwarder {
    // Internal value transfer: the EOA pays this contract, which pays `to` in a nested call frame.
    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    // Half to `good`; half to `bad` inside a frame that reverts (caught), so only `good` is paid.
    function split(address payable good, address payable bad) external payable {
        uint256 half = msg.value / 2;
        (bool ok, ) = good.call{value: half}("");
        require(ok, "good failed");
        try this.payThenRevert{value: msg.value - half}(bad) {} catch {}
    }

    function payThenRevert(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "pay failed");
        revert("always");
    }

    // Pays then reverts the whole transaction.
    function forwardThenRevert(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
        revert("reverted on purpose");
    }

    receive() external payable {}
}
