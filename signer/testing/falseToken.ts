/**
 * Test-only: a token whose `transfer()` returns false instead of reverting while it is paused or
 * the sender's balance is short (old ERC-20s; OpenZeppelin's SafeERC20 exists for them): its
 * transaction mines with status 1, logs nothing and moves nothing. Anyone may mint and pause it.
 * Compiled with solc-js when a test starts (never part of the committed artifacts).
 */
import { type Abi, type Address, getContractAddress } from "viem";
import type { Rpc } from "../../indexers/testing/chain.js";
import { deployTestContract } from "../sweeps/testing/feeToken.js";

/** anvil dev account 8 deploys the token at nonce 0, so a config can list it up front. */
export const FALSE_DEPLOYER: Address = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f";
export const FALSE_TOKEN: Address = getContractAddress({ from: FALSE_DEPLOYER, nonce: 0n });

const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract FalseToken {
    mapping(address => uint256) public balanceOf;
    bool public paused;
    event Transfer(address indexed from, address indexed to, uint256 value);
    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }
    function setPaused(bool p) external { paused = p; }
    function transfer(address to, uint256 value) external returns (bool) {
        if (paused || balanceOf[msg.sender] < value) return false;
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}`;

/** Compile and deploy the token at FALSE_TOKEN; returns its ABI. */
export function deployFalseToken(rpc: Rpc): Promise<Abi> {
  return deployTestContract(rpc, {
    contract: "FalseToken",
    source: SOURCE,
    deployer: FALSE_DEPLOYER,
    expected: FALSE_TOKEN,
  });
}
