/**
 * Test-only: a listed token that takes 2% on every transfer but logs only half of it: 1% to its
 * collector in a Transfer log, 1% burned without one. The recipient's and the collector's Transfers
 * then fall short of what left the sender, the case where a fee-on-transfer withdrawal's parts do
 * not add up to its amount (api/withdrawals/holds.ts `postFeeOnTransfer`). Compiled with solc-js
 * when a test starts (never part of the committed artifacts).
 */

import { type Abi, type Address, getContractAddress } from "viem";
import type { Rpc } from "../../indexers/testing/chain.js";
import { deployTestContract } from "../../signer/sweeps/testing/feeToken.js";

export const BURN_COLLECTOR: Address = "0x000000000000000000000000000000000000FeE6";
/** anvil dev account 8 deploys the token at nonce 0, so a config can list it up front. */
const BURN_DEPLOYER: Address = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f";
export const BURN_TOKEN: Address = getContractAddress({ from: BURN_DEPLOYER, nonce: 0n });

const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract BurningFeeToken {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);
    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }
    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        uint256 fee = value / 100;
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value - 2 * fee;
        balanceOf[${BURN_COLLECTOR}] += fee;
        emit Transfer(msg.sender, to, value - 2 * fee);
        emit Transfer(msg.sender, ${BURN_COLLECTOR}, fee);
        return true;
    }
}`;

/** Compile and deploy the token at BURN_TOKEN; returns its ABI. */
export function deployBurningFeeToken(rpc: Rpc): Promise<Abi> {
  return deployTestContract(rpc, {
    contract: "BurningFeeToken",
    source: SOURCE,
    deployer: BURN_DEPLOYER,
    expected: BURN_TOKEN,
  });
}
