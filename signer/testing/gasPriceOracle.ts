/**
 * Test-only stand-ins for the OP stack's GasPriceOracle predeploy (0x4200…000F), compiled with
 * solc-js and put in place with `anvil_setCode` (anvil charges no L1 or operator fee itself, and
 * has no oracle): one from before Isthmus (`getL1Fee` only: asked `getOperatorFee`, it reverts
 * without data, as the real one's proxy does) and one since (`getOperatorFee(gasUsed)` by the
 * Isthmus formula, gasUsed x scalar / 1e6 + constant). Fees are constants of the source.
 */
import type { Hex } from "viem";
import { compileTestContract } from "../sweeps/testing/feeToken.js";

export type OracleFees = {
  /** What `getL1Fee(bytes)` answers for any transaction. */
  l1Fee: bigint;
  /** `getOperatorFee` and its parameters; absent: an oracle from before Isthmus. */
  operatorFee?: { scalar: bigint; constant: bigint };
};

/** The runtime code of a GasPriceOracle stand-in with these fees, for `anvil_setCode`. */
export function gasPriceOracleRuntime(fees: OracleFees): Hex {
  const op = fees.operatorFee;
  const source = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract GasPriceOracle {
    function getL1Fee(bytes calldata) external pure returns (uint256) { return ${fees.l1Fee}; }
${
  op
    ? `    function getOperatorFee(uint256 gasUsed) external pure returns (uint256) {
        return gasUsed * ${op.scalar} / 1e6 + ${op.constant};
    }`
    : ""
}
}`;
  return compileTestContract("GasPriceOracle", source).runtime;
}
