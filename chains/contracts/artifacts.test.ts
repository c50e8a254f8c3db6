import { readFileSync } from "node:fs";
import { concat, getAddress, keccak256, slice } from "viem";
import { describe, expect, it } from "vitest";
import { artifactsPath, compileContracts, serializeArtifacts } from "./compile.js";
import { depositAddressOf, depositSalt, forwarder, forwarderInitCodeHash } from "./index.js";

describe("committed contract artifacts", () => {
  it("match a fresh compile of the sources (run npm run contracts:compile if not)", () => {
    const fresh = serializeArtifacts(compileContracts());
    expect(readFileSync(artifactsPath, "utf8")).toBe(fresh);
  }, 60_000);
});

describe("deposit address derivation", () => {
  it("salt is keccak256 of the customer id and differs per customer", () => {
    expect(depositSalt("alice")).toBe(
      "0x9c0257114eb9399a2985f8e75dad7600c5d89fe3824ffa99ec1c3eb8bf3b0501",
    );
    expect(depositSalt("alice")).not.toBe(depositSalt("bob"));
  });

  it("follows EIP-1014: keccak256(0xff ++ factory ++ salt ++ initCodeHash)[12:]", () => {
    const factory = "0x00000000000000000000000000000000DeaDBeef" as const;
    const salt = depositSalt("customer-1");
    const preimage = concat(["0xff", factory, salt, keccak256(forwarder.bytecode)]);
    const expected = getAddress(slice(keccak256(preimage), 12));
    expect(depositAddressOf(factory, salt)).toBe(expected);
    expect(forwarderInitCodeHash).toBe(keccak256(forwarder.bytecode));
    expect(depositAddressOf(factory, depositSalt("customer-2"))).not.toBe(expected);
  });
});
