/**
 * The ledger transfers of one withdrawal, with deterministic ids per hold epoch. Epoch 0 is the
 * hold placed at intake; each reorg of a confirmed withdrawal reverses the posting (and its gas)
 * and places the hold of the next epoch (DESIGN "Money flows": the posting stands only if the tx
 * mines again). Epoch-0 ids are the ones used before epochs existed, so old rows stay valid.
 */
import type { PoolClient } from "../../foundation/db.js";
import {
  type ChainRef,
  gasBooking,
  gasReversal,
  holdSettlement,
  type Ledger,
  transferId,
} from "../../ledger/index.js";
import type { Withdrawal } from "./store.js";

const suffix = (epoch: number) => (epoch === 0 ? "" : `:${epoch}`);

export const withdrawalTransferIds = (withdrawalId: string, epoch: number) => ({
  hold: transferId(
    epoch === 0 ? `withdrawal:${withdrawalId}` : `withdrawal:${withdrawalId}:hold:${epoch}`,
  ),
  post: transferId(`withdrawal:${withdrawalId}:post${suffix(epoch)}`),
  void: transferId(`withdrawal:${withdrawalId}:void${suffix(epoch)}`),
  fee: transferId(`withdrawal:${withdrawalId}:fee${suffix(epoch)}`),
  /** Reversals that open this epoch (epoch ≥ 1): of the previous epoch's post and gas. */
  reversePost: transferId(`withdrawal:${withdrawalId}:reorg:${epoch}`),
  reverseFee: transferId(`withdrawal:${withdrawalId}:fee:reorg:${epoch}`),
});

type W = Pick<Withdrawal, "id" | "customerId" | "chainId" | "asset" | "amount" | "fromAddress"> & {
  reorgCount: number;
};

const assetId = (w: W) => `${w.chainId}:${w.asset}`;
const hot = (w: W) => `custody:hot:${w.fromAddress}`;
/** The current hold's settlement: posted against the chain fact, or (no fact) voided. */
const settlement = (w: W, chainRef: ChainRef | undefined) => {
  const ids = withdrawalTransferIds(w.id, w.reorgCount);
  return holdSettlement({ pendingId: ids.hold, postId: ids.post, voidId: ids.void, chainRef });
};

export function createWithdrawalHolds(ledger: Ledger) {
  /** Gas the hot wallet paid for the withdrawal's tx: debit fees:gas, credit the hot wallet. */
  async function bookFee(client: PoolClient, w: W, fee: bigint, txHash: string | null) {
    if (fee <= 0n || !txHash) return;
    await ledger.transfer(
      gasBooking({
        id: withdrawalTransferIds(w.id, w.reorgCount).fee,
        chainId: w.chainId,
        hotWallet: w.fromAddress!,
        txHash,
        amount: fee,
        memo: `gas of withdrawal ${w.id}`,
      }),
      { client },
    );
  }

  return {
    bookFee,

    /** Mined and confirmed: post the current hold against the chain fact, then book the gas. */
    async post(client: PoolClient, w: W, chainRef: ChainRef, fee: bigint) {
      await ledger.transfer(settlement(w, chainRef), { client });
      await bookFee(client, w, fee, chainRef.txHash);
    },

    /**
     * A reorg removed the confirmed tx: reverse the posting and the gas booked with it, and hold
     * the amount again under the next epoch. Returns that epoch. The customer's available balance
     * does not change (credited back and held again in the same transaction).
     */
    async revert(client: PoolClient, w: W, bookedFee: bigint | null): Promise<number> {
      const before = withdrawalTransferIds(w.id, w.reorgCount);
      const epoch = w.reorgCount + 1;
      const next = withdrawalTransferIds(w.id, epoch);
      await ledger.transfer(
        {
          id: next.reversePost,
          assetId: assetId(w),
          debit: hot(w),
          credit: `user:${w.customerId}`,
          amount: w.amount,
          kind: "withdrawal",
          reverses: before.post,
          memo: `withdrawal ${w.id} reorged out: posting reversed`,
        },
        { client },
      );
      if (bookedFee !== null && bookedFee > 0n)
        await ledger.transfer(
          gasReversal({
            id: next.reverseFee,
            reverses: before.fee,
            chainId: w.chainId,
            hotWallet: w.fromAddress!,
            amount: bookedFee,
            kind: "fee",
            memo: `gas of withdrawal ${w.id} reorged out: reversed`,
          }),
          { client },
        );
      await ledger.hold(
        {
          id: next.hold,
          assetId: assetId(w),
          debit: `user:${w.customerId}`,
          credit: hot(w),
          amount: w.amount,
          kind: "withdrawal",
          memo: `withdrawal ${w.id} (held again after a reorg, epoch ${epoch})`,
        },
        { client },
      );
      return epoch;
    },

    /** Failed (before broadcast, on a final block, or by an operator): release the current hold. */
    async release(client: PoolClient, w: W) {
      await ledger.transfer(settlement(w, undefined), { client });
    },
  };
}
