import { describe, expect, it } from "vitest";
import { canonicalAuditRow } from "../../foundation/audit.js";
import { breakIdentities, breakIdentity } from "./breakStates.js";
import type { Break } from "./types.js";

const brk = (type: Break["type"], key: string, difference = 1n): Break => ({
  type,
  assetId: "31337:0x0000000000000000000000000000000000000000",
  key,
  facts: [],
  entries: [],
  chainAmount: 0n,
  ledgerAmount: difference,
  difference,
  action: "",
});

describe("break identity", () => {
  it("is type, chain, asset and subject: the amount is not part of it", () => {
    expect(breakIdentity(1, brk("fee_not_booked", "0xab:fee", 5n))).toBe(
      breakIdentity(1, brk("fee_not_booked", "0xab:fee", 9n)),
    );
    expect(breakIdentity(1, brk("fee_not_booked", "0xab:fee"))).not.toBe(
      breakIdentity(2, brk("fee_not_booked", "0xab:fee")),
    );
    expect(breakIdentity(1, brk("fee_not_booked", "0xab:fee"))).toBe(
      "fee_not_booked|1|31337:0x0000000000000000000000000000000000000000|0xab:fee",
    );
  });

  it("numbers repeats within one run so each break keeps its own state", () => {
    const ids = breakIdentities(1, [
      brk("double_credit", "0xab:tx"),
      brk("missing_credit", "0xab:tx"),
      brk("double_credit", "0xab:tx"),
    ]);
    expect(ids[2]).toBe(`${ids[0]}#2`);
    expect(new Set(ids).size).toBe(3);
  });
});

describe("canonical audit row", () => {
  const row = {
    seq: "1",
    id: "1",
    atMicros: "1700000000000000",
    actor: "a",
    action: "b",
    entityType: "c",
    entityId: "d",
    details: "{}",
  };
  it("length-prefixes each field in UTF-8 octets, so moving a separator changes it", () => {
    expect(canonicalAuditRow({ ...row, actor: "ü" })).toContain("2:ü,");
    expect(canonicalAuditRow({ ...row, actor: "a,1:b", action: "" })).not.toBe(
      canonicalAuditRow({ ...row, actor: "a", action: "b" }),
    );
  });
});
