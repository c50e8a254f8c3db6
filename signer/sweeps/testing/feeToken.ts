/**
 * Test-only: a listed token that takes a 1% fee on every transfer (PAXG-style; USDT has the
 * switch), sent to a collector. Its Transfer logs say what each side got: the recipient less than
 * left the sender. Compiled with solc-js when a test starts (never part of the committed artifacts).
 */

import solc from "solc";
import { type Abi, type Address, getContractAddress, type Hex } from "viem";
import { type Rpc, sendAndMine } from "../../../indexers/testing/chain.js";

export const FEE_COLLECTOR: Address = "0x000000000000000000000000000000000000Fee5";
/** anvil dev account 7 deploys the fee token at nonce 0, so a config can list it up front. */
export const FEE_DEPLOYER: Address = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955";
export const FEE_TOKEN: Address = getContractAddress({ from: FEE_DEPLOYER, nonce: 0n });

const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract FeeToken {
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
        balanceOf[to] += value - fee;
        balanceOf[${FEE_COLLECTOR}] += fee;
        emit Transfer(msg.sender, to, value - fee);
        emit Transfer(msg.sender, ${FEE_COLLECTOR}, fee);
        return true;
    }
}`;

/** Compile and deploy the fee token at FEE_TOKEN; returns its ABI. */
export function deployFeeToken(rpc: Rpc): Promise<Abi> {
  return deployTestContract(rpc, {
    contract: "FeeToken",
    source: SOURCE,
    deployer: FEE_DEPLOYER,
    expected: FEE_TOKEN,
  });
}

/** A test-only contract compiled with solc-js: its ABI, init code and runtime code. */
export type CompiledTestContract = { abi: Abi; bytecode: Hex; runtime: Hex };

/**
 * Compile the test-only contract `contract` of `source` with solc-js. The runtime code is what
 * `anvil_setCode` puts at an address (a predeploy's stand-in); the init code is what a deploy sends.
 */
export function compileTestContract(contract: string, source: string): CompiledTestContract {
  const file = `${contract}.sol`;
  const out = JSON.parse(
    solc.compile(
      JSON.stringify({
        language: "Solidity",
        sources: { [file]: { content: source } },
        settings: {
          evmVersion: "cancun",
          outputSelection: {
            "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
          },
        },
      }),
    ),
  ) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<
      string,
      Record<
        string,
        { abi: Abi; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }
      >
    >;
  };
  const errors = (out.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const c = out.contracts[file]![contract]!;
  return {
    abi: c.abi,
    bytecode: `0x${c.evm.bytecode.object}`,
    runtime: `0x${c.evm.deployedBytecode.object}`,
  };
}

/**
 * Compile a test-only contract with solc-js and deploy it from `deployer` (an anvil dev account at
 * nonce 0, so `expected` is known before and a config can list it); returns its ABI.
 */
export async function deployTestContract(
  rpc: Rpc,
  args: { contract: string; source: string; deployer: Address; expected: Address },
): Promise<Abi> {
  const c = compileTestContract(args.contract, args.source);
  const r = await sendAndMine(rpc, {
    from: args.deployer.toLowerCase() as Hex,
    data: c.bytecode,
    gas: 3_000_000n,
  });
  if (r.contractAddress?.toLowerCase() !== args.expected.toLowerCase())
    throw new Error(`${args.contract} not at the expected address ${args.expected}`);
  return c.abi;
}
