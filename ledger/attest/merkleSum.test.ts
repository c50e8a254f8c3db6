import { bytesToHex, concat, type Hex, keccak256 as viemKeccak, zeroHash } from "viem";
import { describe, expect, it } from "vitest";
import { keccak256, verifyProof } from "../../ops/por/verify.js";
import {
  addressesRoot,
  buildMerkleSumTree,
  type MerkleSumTree,
  parentOf,
  proofPath,
} from "./merkleSum.js";

const salt = (i: number): Hex => viemKeccak(`0x${i.toString(16).padStart(8, "0")}`);

function customers(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    customerId: `cust-${i}`,
    salt: salt(i),
    balance: BigInt(i * 1_000_003 + 7),
  }));
}

function proofOf(tree: MerkleSumTree, customerId: string) {
  const leaf = tree.leaves.find((l) => l.customerId === customerId)!;
  const { path } = proofPath(tree, customerId);
  return {
    asset: "0x0000000000000000000000000000000000000000",
    block: "42",
    customerId,
    salt: leaf.salt,
    balance: leaf.balance.toString(),
    path: path.map((s) => ({ side: s.side, hash: s.hash, sum: s.sum.toString() })),
  };
}

function attestationOf(tree: MerkleSumTree, reserves = tree.root.sum) {
  return {
    asset: "0x0000000000000000000000000000000000000000",
    block: "42",
    reserves: reserves.toString(),
    liabilities: tree.root.sum.toString(),
    liabilitiesRoot: tree.root.hash,
  };
}

const failed = (r: ReturnType<typeof verifyProof>) =>
  r.checks.filter((c) => !c.ok).map((c) => c.name);

describe("the verifier's own keccak256", () => {
  it("equals viem's on lengths around the 136-byte rate", () => {
    for (const n of [0, 1, 31, 32, 135, 136, 137, 272, 1000]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 131 + n) & 255);
      expect(bytesToHex(keccak256(bytes)), `length ${n}`).toBe(viemKeccak(bytes));
    }
  });
});

describe("Merkle-sum tree of liabilities", () => {
  it("every customer's proof verifies against the root, for odd and even sizes", () => {
    for (const n of [1, 2, 3, 5, 8, 13]) {
      const list = customers(n);
      const tree = buildMerkleSumTree(list);
      expect(tree.root.sum).toBe(list.reduce((s, c) => s + c.balance, 0n));
      for (const c of list) {
        const r = verifyProof(proofOf(tree, c.customerId), attestationOf(tree));
        expect(failed(r), `${n} customers, ${c.customerId}`).toEqual([]);
        expect(r.ok).toBe(true);
        expect(r.root).toEqual({ hash: tree.root.hash, sum: tree.root.sum.toString() });
      }
    }
  });

  it("leaf order depends on the salted id only (not on the input order)", () => {
    const list = customers(6);
    expect(buildMerkleSumTree([...list].reverse()).root).toEqual(buildMerkleSumTree(list).root);
  });

  it("refuses a negative balance and a customer twice", () => {
    expect(() => buildMerkleSumTree([{ customerId: "a", salt: salt(1), balance: -1n }])).toThrow(
      /negative/,
    );
    expect(() =>
      buildMerkleSumTree([
        { customerId: "a", salt: salt(1), balance: 1n },
        { customerId: "a", salt: salt(2), balance: 2n },
      ]),
    ).toThrow(/twice/);
  });

  it("an odd level is padded with (0, 0), not its last leaf: a tree with that leaf twice has another root and sum, and no proof of the honest tree verifies against it", () => {
    const tree = buildMerkleSumTree(customers(3));
    const [l0, l1, l2] = tree.levels[0]!;
    const doubled = parentOf(parentOf(l0!, l1!), parentOf(l2!, l2!));
    expect(doubled.hash).not.toBe(tree.root.hash);
    expect(doubled.sum).toBe(tree.root.sum + l2!.sum);
    const last = tree.leaves[2]!.customerId;
    const r = verifyProof(proofOf(tree, last), {
      ...attestationOf(tree, doubled.sum),
      liabilities: doubled.sum.toString(),
      liabilitiesRoot: doubled.hash,
    });
    expect(failed(r)).toEqual([
      "root hash matches the attested liabilitiesRoot",
      "root sum equals the attested liabilities",
    ]);
  });

  describe("tampering fails verification, naming the check", () => {
    const tree = buildMerkleSumTree(customers(7));
    const good = proofOf(tree, "cust-3");
    const att = attestationOf(tree);

    it("a raised balance", () => {
      const r = verifyProof({ ...good, balance: (BigInt(good.balance) + 1n).toString() }, att);
      expect(r.ok).toBe(false);
      expect(failed(r)).toEqual([
        "root hash matches the attested liabilitiesRoot",
        "root sum equals the attested liabilities",
      ]);
    });

    it("a lowered balance with a sibling sum raised to keep the total", () => {
      const path = good.path.map((s, i) =>
        i === 0 ? { ...s, sum: (BigInt(s.sum) + 5n).toString() } : s,
      );
      const r = verifyProof(
        { ...good, balance: (BigInt(good.balance) - 5n).toString(), path },
        att,
      );
      expect(failed(r)).toEqual(["root hash matches the attested liabilitiesRoot"]);
    });

    it("a sibling's hash", () => {
      const path = good.path.map((s, i) =>
        i === 1 ? { ...s, hash: viemKeccak(s.hash as Hex) } : s,
      );
      expect(failed(verifyProof({ ...good, path }, att))).toEqual([
        "root hash matches the attested liabilitiesRoot",
      ]);
    });

    it("a sibling's sum", () => {
      const path = good.path.map((s, i) =>
        i === 2 ? { ...s, sum: (BigInt(s.sum) - 1n).toString() } : s,
      );
      expect(failed(verifyProof({ ...good, path }, att))).toEqual([
        "root hash matches the attested liabilitiesRoot",
        "root sum equals the attested liabilities",
      ]);
    });

    it("the salt", () => {
      expect(failed(verifyProof({ ...good, salt: salt(999) }, att))).toEqual([
        "root hash matches the attested liabilitiesRoot",
      ]);
    });

    it("a negative leaf or sibling sum is named as negative", () => {
      const r = verifyProof({ ...good, balance: "-5" }, att);
      expect(failed(r)).toEqual(["proof readable"]);
      expect(r.checks[0]!.detail).toMatch(/balance .*is negative \(-5\)/);
      const path = good.path.map((s, i) => (i === 0 ? { ...s, sum: "-1" } : s));
      expect(verifyProof({ ...good, path }, att).checks[0]!.detail).toMatch(
        /path\[0\]\.sum is negative/,
      );
    });

    it("an attestation whose liabilities differ from the tree's sum (a wrong sum)", () => {
      const r = verifyProof(good, { ...att, liabilities: (tree.root.sum - 1n).toString() });
      expect(failed(r)).toEqual(["root sum equals the attested liabilities"]);
    });

    it("reserves below liabilities", () => {
      const r = verifyProof(good, attestationOf(tree, tree.root.sum - 1n));
      expect(failed(r)).toEqual(["reserves cover liabilities"]);
    });

    it("another asset's or block's attestation", () => {
      expect(failed(verifyProof(good, { ...att, block: "43" }))).toEqual(["same block"]);
    });
  });
});

describe("Merkle root of the custody address list", () => {
  const a = "0x00000000000000000000000000000000000000aa";
  const b = "0x00000000000000000000000000000000000000bb";
  const c = "0x00000000000000000000000000000000000000cc";

  it("refuses an address twice (any case): the last odd node pairs with itself, so [a,b,c] and [a,b,c,c] share a root while reserves would count c twice", () => {
    expect(() => addressesRoot([a, b, c, c])).toThrow(/appears twice/);
    expect(() => addressesRoot([a, b, c, c.toUpperCase().replace("0X", "0x")])).toThrow(
      /appears twice/,
    );
  });

  it("keeps the root of a list without duplicates (attestations already on chain)", () => {
    const h = (x: string) => viemKeccak(x as Hex);
    const pair = (x: Hex, y: Hex) => viemKeccak(concat(x < y ? [x, y] : [y, x]));
    expect(addressesRoot([c, a, b])).toBe(pair(pair(h(a), h(b)), pair(h(c), h(c))));
    expect(addressesRoot([])).toBe(zeroHash);
  });
});
