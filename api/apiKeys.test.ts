/** Who a key's holder is, as approvals count them: owner and email, normalised (pure). */
import { describe, expect, it } from "vitest";
import { parseEmail, personsAmong } from "./apiKeys.js";

type Key = { owner: string; email?: string | null };
const sharesPerson = (a: Key, b: Key) => {
  const personOf = personsAmong([a, b]);
  return personOf(a) === personOf(b);
};
const countPersons = (keys: Key[]) => new Set(keys.map(personsAmong(keys))).size;

describe("persons behind API keys", () => {
  it("one person shares an owner or an email, whatever the spelling", () => {
    expect(sharesPerson({ owner: "anna" }, { owner: " ANNA " })).toBe(true);
    expect(
      sharesPerson(
        { owner: "anna", email: "anna@example.com" },
        { owner: "oidc:anna@example.com", email: "Anna@Example.com" },
      ),
    ).toBe(true);
    // an owner that is the other's email
    expect(
      sharesPerson({ owner: "anna@example.com" }, { owner: "x", email: "anna@example.com" }),
    ).toBe(true);
    expect(sharesPerson({ owner: "anna", email: "anna@example.com" }, { owner: "ben" })).toBe(
      false,
    );
    expect(sharesPerson({ owner: "anna", email: null }, { owner: "oidc:anna@example.com" })).toBe(
      false,
    );
  });

  it("counts persons, joining deciders through a shared identity", () => {
    expect(countPersons([])).toBe(0);
    expect(countPersons([{ owner: "anna" }, { owner: "ben" }])).toBe(2);
    expect(
      countPersons([
        { owner: "anna", email: "anna@example.com" },
        { owner: "oidc:anna@example.com", email: "anna@example.com" },
        { owner: "ben" },
      ]),
    ).toBe(2);
    // a and c share nothing, but b joins them: one person
    expect(
      countPersons([
        { owner: "a", email: "p@example.com" },
        { owner: "c", email: "q@example.com" },
        { owner: "b", email: "q@example.com" },
        { owner: "a" },
        { owner: "b", email: "p@example.com" },
      ]),
    ).toBe(1);
  });

  it("takes one email address, normalised, and refuses anything else naming the field", () => {
    expect(parseEmail(" Anna@Example.COM ")).toBe("anna@example.com");
    for (const bad of ["", "anna", "anna@", "@example.com", "a b@example.com", "a@b@c"])
      expect(() => parseEmail(bad), bad).toThrow(/email must be one address/);
  });
});
