/**
 * Two attestation ticks of one chain at once: what a lost chain lock allows (the holder's tick
 * goes on while another reconciler, which took the lock, ticks too). The role's `held` signal is
 * read before the commit, but a lock can go between that read and the commit, or unheard for up
 * to `lostAfterMs`; both ticks then found nothing in flight, and each requested its block: two
 * attestation transactions, gas paid twice (one of them for an older block than the other). The
 * tick's committing transaction now takes the chain's attestation write lock and checks again
 * what it decided from (nothing in flight, the block due): the second tick requests nothing.
 * Deterministic: the first tick is held at its reserves read (after its checks) while the second
 * runs whole. Real Postgres, anvil, the indexer and the signer's request intake.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type EvmAdapter } from "../../chains/index.js";
import { freshAddress } from "../../indexers/testing/chain.js";
import { gate } from "../../ops/testing/gate.js";
import { getTxOutcomes, requestTransaction } from "../../signer/index.js";
import { type AttestChainReaders, createAttestor } from "./attest.js";
import { type AttestableChain, startAttestableChain } from "./testing/attestableChain.js";

const CHAIN_ID = 31337;
const HOT = freshAddress(611);
let t: AttestableChain;

/** The node's readers, whose reserves reads wait at a gate: `reached` once one does. */
function gatedReaders() {
  const direct = adapterPerChain(t.ctx.common);
  const reached = gate();
  const held = gate();
  const readers: AttestChainReaders = (chain) => {
    const a = direct(chain);
    const batch: EvmAdapter["rpc"]["batch"] = async (...args) => {
      reached.open();
      await held.wait;
      return a.rpc.batch(...args);
    };
    return {
      getTokenBalances: (...args) => a.getTokenBalances(...args),
      rpc: new Proxy(a.rpc, {
        get: (target, key) => (key === "batch" ? batch : Reflect.get(target, key)),
      }),
    };
  };
  return { readers, reached: reached.wait, release: held.open };
}

const attestor = (chains: AttestChainReaders) =>
  createAttestor({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    sender: { requestTransaction, getTxOutcomes },
    chains,
  });

beforeAll(async () => {
  t = await startAttestableChain({ hot: HOT, attestor: freshAddress(612) });
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe("two attestation ticks of one chain at once (a lost lock)", () => {
  it("the later commit requests nothing: one attestation in flight, gas paid once", async () => {
    const first = await t.finalRun();
    const gated = gatedReaders();
    // The first tick found nothing in flight and its block due, and reads the reserves.
    const ticking = attestor(gated.readers)
      .tick(t.chain, { everyBlocks: 1 })
      .then(
        (ok) => ({ ok }),
        (err: unknown) => ({ err }),
      );
    try {
      await gated.reached;
      // Meanwhile another reconciler, with the chain's lock, attests a newer run's block.
      const second = await t.finalRun();
      expect(second).toBeGreaterThan(first);
      const other = await attestor(adapterPerChain(t.ctx.common)).tick(t.chain, {
        everyBlocks: 1,
      });
      expect(other.attested.map((a) => a.block)).toEqual([second]);
    } finally {
      gated.release();
    }
    const late = await ticking;
    expect(late).toEqual({ ok: expect.objectContaining({ attested: [], skipped: "in_flight" }) });
    const { rows } = await t.ctx.db.pool.query<{ block: number; requests: number }>(
      `SELECT a.block_number::int AS block,
              (SELECT count(*)::int FROM custody.tx_requests r
                WHERE r.chain_id = a.chain_id AND r.kind = 'attestation') AS requests
         FROM attest.attestations a WHERE a.chain_id = $1`,
      [CHAIN_ID],
    );
    expect(rows).toEqual([{ block: expect.any(Number), requests: 1 }]);
  }, 120_000);
});
