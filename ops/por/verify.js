// Proof-of-liabilities verification, shared as-is by `custody-node por verify` (Node) and the static
// page verifier.html (a browser, no build step, no CDN): plain JavaScript, no imports, so the one file
// both load is the code both run. It carries its own Keccak-256 (tested against viem's) because a
// browser has none built in.
//
// The tree (built by ledger/attest/merkleSum.ts, an independent implementation):
//   saltedId = keccak256(salt (32 bytes) ‖ utf8(customerId))
//   leaf     = { hash: keccak256(0x00 ‖ saltedId ‖ uint256(balance)), sum: balance }
//   node     = { hash: keccak256(0x01 ‖ left.hash ‖ uint256(left.sum) ‖ right.hash ‖ uint256(right.sum)),
//                sum: left.sum + right.sum }
//   an odd level is padded with { hash: 0x00…00, sum: 0 }.
// Every node's hash commits to both children's sums, so a leaf cannot be left out or made negative
// without changing the root or its sum; sums are uint256, checked for sign and overflow here.

const MASK64 = (1n << 64n) - 1n;
const MAX_UINT256 = (1n << 256n) - 1n;
const RC = [
  0x0000000000000001n,
  0x0000000000008082n,
  0x800000000000808an,
  0x8000000080008000n,
  0x000000000000808bn,
  0x0000000080000001n,
  0x8000000080008081n,
  0x8000000000008009n,
  0x000000000000008an,
  0x0000000000000088n,
  0x0000000080008009n,
  0x000000008000000an,
  0x000000008000808bn,
  0x800000000000008bn,
  0x8000000000008089n,
  0x8000000000008003n,
  0x8000000000008002n,
  0x8000000000000080n,
  0x000000000000800an,
  0x800000008000000an,
  0x8000000080008081n,
  0x8000000000008080n,
  0x0000000080000001n,
  0x8000000080008008n,
];
const RHO = [
  1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44,
];
const PI = [10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1];

const rotl = (x, n) => ((x << BigInt(n)) | (x >> BigInt(64 - n))) & MASK64;

function keccakF(s) {
  const c = new Array(5);
  const b = new Array(5);
  for (let round = 0; round < 24; round++) {
    for (let x = 0; x < 5; x++) c[x] = s[x] ^ s[x + 5] ^ s[x + 10] ^ s[x + 15] ^ s[x + 20];
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
      for (let y = 0; y < 25; y += 5) s[y + x] ^= d;
    }
    let t = s[1];
    for (let i = 0; i < 24; i++) {
      const j = PI[i];
      const tmp = s[j];
      s[j] = rotl(t, RHO[i]);
      t = tmp;
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) b[x] = s[y + x];
      for (let x = 0; x < 5; x++) s[y + x] = b[x] ^ (~b[(x + 1) % 5] & MASK64 & b[(x + 2) % 5]);
    }
    s[0] ^= RC[round];
  }
}

/** Keccak-256 (Ethereum's, padding 0x01, not SHA3-256's 0x06) of bytes. */
export function keccak256(bytes) {
  const rate = 136;
  const padded = new Uint8Array((Math.floor(bytes.length / rate) + 1) * rate);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const s = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let lane = 0n;
      for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[off + i * 8 + k]);
      s[i] ^= lane;
    }
    keccakF(s);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    let lane = s[i];
    for (let k = 0; k < 8; k++) {
      out[i * 8 + k] = Number(lane & 0xffn);
      lane >>= 8n;
    }
  }
  return out;
}

export function bytesToHex(bytes) {
  let hex = "0x";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** Thrown for a proof or attestation that cannot be read at all (the message names the field). */
export class ProofFormatError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofFormatError";
  }
}

function hex32(value, field) {
  if (typeof value !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(value))
    throw new ProofFormatError(
      `${field} must be 0x followed by 64 hex digits (got ${show(value)})`,
    );
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(value.slice(2 + i * 2, 4 + i * 2), 16);
  return out;
}

function show(value) {
  const s = typeof value === "string" ? JSON.stringify(value) : String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * A uint256 from a decimal string (or a bigint). A leading minus is named as negative: that is the
 * one lie a sum tree exists to rule out.
 */
function amount(value, field) {
  if (typeof value === "bigint") {
    if (value < 0n) throw new ProofFormatError(`${field} is negative (${value})`);
    if (value > MAX_UINT256) throw new ProofFormatError(`${field} exceeds uint256`);
    return value;
  }
  if (typeof value === "string" && /^-\d+$/.test(value.trim()))
    throw new ProofFormatError(`${field} is negative (${value})`);
  if (typeof value !== "string" || !/^\d{1,78}$/.test(value))
    throw new ProofFormatError(
      `${field} must be a non-negative integer as a decimal string (got ${show(value)})`,
    );
  const n = BigInt(value);
  if (n > MAX_UINT256) throw new ProofFormatError(`${field} exceeds uint256`);
  return n;
}

function uint256(n) {
  const out = new Uint8Array(32);
  let v = n;
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** keccak256(salt ‖ utf8(customerId)): the only form in which a customer's id reaches the tree. */
export function saltedIdOf(customerId, salt) {
  if (typeof customerId !== "string" || customerId.length === 0)
    throw new ProofFormatError("customerId must be a non-empty string");
  return keccak256(concat([hex32(salt, "salt"), new TextEncoder().encode(customerId)]));
}

export function leafHash(saltedId, balance) {
  return keccak256(concat([Uint8Array.of(0), saltedId, uint256(balance)]));
}

export function nodeHash(left, right) {
  return keccak256(
    concat([Uint8Array.of(1), left.hash, uint256(left.sum), right.hash, uint256(right.sum)]),
  );
}

/**
 * Walk a proof's path from the customer's leaf to the root. Throws ProofFormatError on an
 * unreadable proof (naming the field); returns the root the proof leads to.
 */
export function computeRoot(proof) {
  if (proof === null || typeof proof !== "object")
    throw new ProofFormatError("proof must be a JSON object");
  const balance = amount(proof.balance, "balance (the customer's leaf)");
  let node = { hash: leafHash(saltedIdOf(proof.customerId, proof.salt), balance), sum: balance };
  if (!Array.isArray(proof.path)) throw new ProofFormatError("path must be an array");
  proof.path.forEach((step, i) => {
    if (step === null || typeof step !== "object")
      throw new ProofFormatError(`path[${i}] must be an object`);
    if (step.side !== "left" && step.side !== "right")
      throw new ProofFormatError(
        `path[${i}].side must be "left" or "right" (got ${show(step.side)})`,
      );
    const sibling = {
      hash: hex32(step.hash, `path[${i}].hash`),
      sum: amount(step.sum, `path[${i}].sum`),
    };
    const sum = node.sum + sibling.sum;
    if (sum > MAX_UINT256) throw new ProofFormatError(`path[${i}]: the sum overflows uint256`);
    node = {
      hash: step.side === "left" ? nodeHash(sibling, node) : nodeHash(node, sibling),
      sum,
    };
  });
  return { hash: bytesToHex(node.hash), sum: node.sum };
}

const sameHex = (a, b) =>
  typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();

/**
 * Verify a customer's proof against an attestation read from a source the verifier trusts (the
 * chain, or an indexer of it), never against figures the proof itself carries.
 *
 * attestation: { chainId?, contract?, asset, block, reserves, liabilities, liabilitiesRoot,
 * eventBlock?, finalizedBlock? } (amounts and blocks as decimal strings, amounts also bigints);
 * chain, contract, asset and block are compared with the proof's where both name them, and the
 * event's block with the finalized one where the source gives both. Returns { ok, checks: [{ name,
 * ok, detail }], root } — every check is run and named, so a failure says which one; a proof that
 * cannot be read gives one failed "proof readable" check.
 */
export function verifyProof(proof, attestation) {
  const checks = [];
  const check = (name, ok, detail) => checks.push({ name, ok, detail });
  let root = null;
  try {
    root = computeRoot(proof);
    check(
      "proof readable",
      true,
      `leaf of ${proof.customerId} with balance ${proof.balance}, ${proof.path.length} path steps`,
    );
  } catch (error) {
    if (!(error instanceof ProofFormatError)) throw error;
    check("proof readable", false, error.message);
  }
  let att = null;
  try {
    if (attestation === null || typeof attestation !== "object")
      throw new ProofFormatError("attestation must be an object");
    att = {
      reserves: amount(attestation.reserves, "attestation reserves"),
      liabilities: amount(attestation.liabilities, "attestation liabilities"),
      liabilitiesRoot: bytesToHex(
        hex32(attestation.liabilitiesRoot, "attestation liabilitiesRoot"),
      ),
    };
  } catch (error) {
    if (!(error instanceof ProofFormatError)) throw error;
    check("attestation readable", false, error.message);
  }
  if (att) {
    if (proof && typeof proof === "object") {
      if (proof.chainId !== undefined && attestation.chainId !== undefined)
        check(
          "same chain",
          String(proof.chainId) === String(attestation.chainId),
          `proof ${proof.chainId}, attestation ${attestation.chainId}`,
        );
      // The source names the contract the customer chose (the custodian's published attestor);
      // a proof pointing elsewhere is another attestor's tree, whoever deployed it.
      if (proof.contract !== undefined && attestation.contract !== undefined)
        check(
          "same contract",
          sameHex(proof.contract, attestation.contract),
          `proof ${proof.contract}, attestation ${attestation.contract}`,
        );
      if (proof.asset !== undefined && attestation.asset !== undefined)
        check(
          "same asset",
          sameHex(proof.asset, attestation.asset),
          `proof ${proof.asset}, attestation ${attestation.asset}`,
        );
      if (proof.block !== undefined && attestation.block !== undefined)
        check(
          "same block",
          String(proof.block) === String(attestation.block),
          `proof ${proof.block}, attestation ${attestation.block}`,
        );
    }
    // A source that reads the chain (--rpc) says which block holds the Attested event and which
    // block the chain has finalized: an event above it can still be reorged out, so its figures
    // are not yet the chain's for good (and a block that cannot be read is not final).
    if (attestation.eventBlock !== undefined && attestation.finalizedBlock !== undefined) {
      const isBlock = (v) => typeof v === "string" && /^\d+$/.test(v);
      check(
        "Attested event in a final block",
        isBlock(attestation.eventBlock) &&
          isBlock(attestation.finalizedBlock) &&
          BigInt(attestation.eventBlock) <= BigInt(attestation.finalizedBlock),
        `event in block ${attestation.eventBlock}; the chain's finalized block is ${attestation.finalizedBlock}`,
      );
    }
    if (root) {
      check(
        "root hash matches the attested liabilitiesRoot",
        sameHex(root.hash, att.liabilitiesRoot),
        `path leads to ${root.hash}; attested ${att.liabilitiesRoot}`,
      );
      check(
        "root sum equals the attested liabilities",
        root.sum === att.liabilities,
        `path sums to ${root.sum}; attested ${att.liabilities}`,
      );
    }
    check(
      "reserves cover liabilities",
      att.reserves >= att.liabilities,
      `reserves ${att.reserves}, liabilities ${att.liabilities}`,
    );
  }
  return {
    ok: checks.length > 0 && checks.every((c) => c.ok),
    checks,
    root: root ? { hash: root.hash, sum: root.sum.toString() } : null,
  };
}

/**
 * The GraphQL query for one attestation, and how to read its answer: Ponder's shape
 * (`attestations(...) { items { … } }`) or Graph Node's (`attestations(...) { … }`).
 */
export const ATTESTATION_FIELDS =
  "chainId contract asset block reserves liabilities liabilitiesRoot addressesRoot reportHash";

export function attestationQuery(shape, filters = ["asset", "block"]) {
  const types =
    shape === "graph"
      ? { asset: "Bytes!", block: "BigInt!", chainId: "Int!", contract: "Bytes!" }
      : { asset: "String!", block: "BigInt!", chainId: "Int!", contract: "String!" };
  const vars = filters.map((f) => `$${f}: ${types[f]}`).join(", ");
  const where = filters.map((f) => `${f}: $${f}`).join(", ");
  return shape === "graph"
    ? `query(${vars}) { attestations(where: { ${where} }, first: 1) { ${ATTESTATION_FIELDS} } }`
    : `query(${vars}) { attestations(where: { ${where} }, limit: 1) { items { ${ATTESTATION_FIELDS} } } }`;
}

/** Fetch the attestation a proof refers to from a GraphQL endpoint (fetch is global in Node and browsers). */
export async function fetchAttestation(url, proof, fetchImpl = fetch) {
  if (
    proof === null ||
    typeof proof !== "object" ||
    typeof proof.asset !== "string" ||
    proof.block === undefined
  )
    throw new ProofFormatError("proof must carry asset and block to look its attestation up");
  // The proof's chain and contract narrow the lookup when it names them: an indexer may serve
  // several chains, and only the custody's own attestor counts.
  const variables = { asset: proof.asset.toLowerCase(), block: String(proof.block) };
  if (Number.isSafeInteger(proof.chainId)) variables.chainId = proof.chainId;
  if (typeof proof.contract === "string") variables.contract = proof.contract.toLowerCase();
  const filters = Object.keys(variables);
  let lastError = "";
  for (const shape of ["ponder", "graph"]) {
    const res = await fetchImpl(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: attestationQuery(shape, filters), variables }),
    });
    const body = await res.json().catch(() => null);
    const list = body?.data?.attestations;
    const rows = Array.isArray(list) ? list : list?.items;
    if (Array.isArray(rows)) {
      if (rows.length === 0)
        throw new ProofFormatError(
          `no attestation for ${filters.map((f) => `${f} ${variables[f]}`).join(", ")} at ${url}`,
        );
      return rows[0];
    }
    lastError = body?.errors?.[0]?.message ?? `HTTP ${res.status}`;
  }
  throw new ProofFormatError(
    `GraphQL endpoint ${url} did not answer the attestation query: ${lastError}`,
  );
}
