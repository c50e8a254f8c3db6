/**
 * The ledger transfers of one withdrawal, with deterministic ids per hold epoch. Epoch 0 is the
 * hold placed at intake; each reorg of a confirmed withdrawal reverses the posting (and its gas)
 * and places the hold of the next epoch (DESIGN "Money flows": the posting stands only if the tx
 * mines again). Epoch-0 ids are the ones used before epochs existed, so old rows stay valid.
 */
import type { PoolClient } from "../../foundation/db.js";
import type { Logger } from "../../foundation/logger.js";
import {
  type ChainRef,
  clearWithdrawalShortfallBlock,
  coverReorgHold,
  gasBooking,
  gasReversal,
  holdSettlement,
  type Ledger,
  lockReorgReceivable,
  recordWriteOffReversal,
  transferId,
  writeOffReversal,
} from "../../ledger/index.js";
import type { FeeOnTransfer } from "../../signer/index.js";
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
  /**
   * A hold placed again after a deep reorg undid the withdrawal's failure (epoch ≥ 1): what the
   * customer's available balance no longer covered, booked on receivable:reorg, and its return
   * once the withdrawal fails again.
   */
  shortfall: transferId(`withdrawal:${withdrawalId}:shortfall:${epoch}`),
  shortfallReturn: transferId(`withdrawal:${withdrawalId}:shortfall:${epoch}:return`),
  /** The write-off of that shortfall reversed before its return (it was no loss after all). */
  shortfallWriteOffReversal: transferId(`withdrawal:${withdrawalId}:shortfall:${epoch}:writeoff`),
});

/**
 * The n-th fee a fee-on-transfer token took from the withdrawal (one per fee Transfer of the tx),
 * and its reversal opening epoch `epoch + 1` after a reorg.
 */
export const tokenFeeTransferIds = (withdrawalId: string, epoch: number, n: number) => ({
  charge: transferId(`withdrawal:${withdrawalId}:token_fee:${n}${suffix(epoch)}`),
  reverse: transferId(`withdrawal:${withdrawalId}:token_fee:${n}:reorg:${epoch + 1}`),
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

export function createWithdrawalHolds(ledger: Ledger, log: Logger) {
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

  /**
   * The gas booked with the withdrawal's failure, reversed under the next epoch: a deep reorg
   * undid the block its cancel or reverted send mined in. Returns that epoch.
   */
  async function unbookFailureFee(client: PoolClient, w: W): Promise<number> {
    const before = withdrawalTransferIds(w.id, w.reorgCount);
    const epoch = w.reorgCount + 1;
    // Booked by the pass that failed it, so committed.
    const gas = await ledger.getTransfer(before.fee);
    if (gas)
      await ledger.transfer(
        gasReversal({
          id: withdrawalTransferIds(w.id, epoch).reverseFee,
          reverses: before.fee,
          chainId: w.chainId,
          hotWallet: w.fromAddress!,
          amount: gas.amount,
          kind: "fee",
          memo: `gas of withdrawal ${w.id} undone by a deep reorg: reversed`,
        }),
        { client },
      );
    return epoch;
  }

  /**
   * The amount held again from the customer under `epoch` (after `why`). `paid`: its posting was
   * reversed in this transaction (a reorg took the payment off the chain), so no new spend, held
   * also on a frozen balance (the signer sends the same bytes again whatever the freeze).
   */
  async function holdAgainAt(client: PoolClient, w: W, epoch: number, why: string, paid = false) {
    await ledger.hold(
      {
        ...(paid ? { heldAgain: true } : {}),
        id: withdrawalTransferIds(w.id, epoch).hold,
        assetId: assetId(w),
        debit: `user:${w.customerId}`,
        credit: hot(w),
        amount: w.amount,
        kind: "withdrawal",
        memo: `withdrawal ${w.id} (held again after ${why}, epoch ${epoch})`,
      },
      { client },
    );
  }

  return {
    bookFee,
    unbookFailureFee,

    /** Mined and confirmed: post the current hold against the chain fact, then book the gas. */
    async post(client: PoolClient, w: W, chainRef: ChainRef, fee: bigint) {
      await ledger.transfer(settlement(w, chainRef), { client });
      await bookFee(client, w, fee, chainRef.txHash);
    },

    /**
     * Mined and confirmed, and the token took a fee on the transfer: the whole amount left the
     * hot wallet and the customer pays it (the recipient receiving less is the token's rule, as
     * in any wallet). One ledger transfer per chain fact, so reconciliation pairs each: the hold
     * posted for the amount less the token's fees against the recipient's Transfer (the rest of
     * the hold released and charged at once), each fee from the customer against its Transfer;
     * then the gas. A token whose logged Transfers do not account for the whole amount (a part
     * burned without a log) leaves two breaks naming that part, which say it together: the
     * recipient's fact an amount mismatch (booked more than its Transfer carries), and the hot
     * wallet's balance check as much unexplained (its balance agrees with the ledger, but no fact
     * shows that part leaving). The customer still paid it, and the mismatch's suggested action
     * says so instead of booking it back (ledger/recon/match.ts, outflowMismatchAction;
     * ops/e2e/withdrawalFeeToken.test.ts).
     */
    async postFeeOnTransfer(
      client: PoolClient,
      w: W,
      txHash: string,
      charged: FeeOnTransfer,
      fee: bigint,
    ) {
      const ids = withdrawalTransferIds(w.id, w.reorgCount);
      const tokenFees = charged.fees.reduce((sum, f) => sum + f.amount, 0n);
      const ref = (position: string): ChainRef => ({ chainId: w.chainId, txHash, position });
      await ledger.transfer(
        {
          type: "post",
          id: ids.post,
          pendingId: ids.hold,
          amount: w.amount - tokenFees,
          chainRef: ref(charged.received.position),
        },
        { client },
      );
      for (const [n, f] of charged.fees.entries())
        await ledger.transfer(
          {
            id: tokenFeeTransferIds(w.id, w.reorgCount, n).charge,
            assetId: assetId(w),
            debit: `user:${w.customerId}`,
            credit: hot(w),
            amount: f.amount,
            kind: "withdrawal",
            chainRef: ref(f.position),
            memo: `fee the token took on withdrawal ${w.id}`,
          },
          { client },
        );
      await bookFee(client, w, fee, txHash);
    },

    /**
     * A reorg removed the confirmed tx: reverse the posting and the gas booked with it, and hold
     * the amount again under the next epoch. Returns that epoch. The customer's available balance
     * does not change (credited back and held again in the same transaction), so a frozen balance
     * takes it too (`heldAgain`): the money left before, the freeze stops only new spends.
     */
    async revert(client: PoolClient, w: W, bookedFee: bigint | null): Promise<number> {
      const before = withdrawalTransferIds(w.id, w.reorgCount);
      const epoch = w.reorgCount + 1;
      const next = withdrawalTransferIds(w.id, epoch);
      // A fee-on-transfer token's post is short of the amount by the fees charged beside it
      // (postFeeOnTransfer): each is reversed too. Booked in an earlier pass, so committed.
      const posted = (await ledger.getTransfer(before.post))?.postedDelta ?? w.amount;
      await ledger.transfer(
        {
          id: next.reversePost,
          assetId: assetId(w),
          debit: hot(w),
          credit: `user:${w.customerId}`,
          amount: posted,
          kind: "withdrawal",
          reverses: before.post,
          memo: `withdrawal ${w.id} reorged out: posting reversed`,
        },
        { client },
      );
      let charged = posted;
      for (let n = 0; charged < w.amount; n++) {
        const ids = tokenFeeTransferIds(w.id, w.reorgCount, n);
        const tokenFee = await ledger.getTransfer(ids.charge);
        if (!tokenFee) break;
        await ledger.transfer(
          {
            id: ids.reverse,
            assetId: assetId(w),
            debit: hot(w),
            credit: `user:${w.customerId}`,
            amount: tokenFee.amount,
            kind: "withdrawal",
            reverses: ids.charge,
            memo: `withdrawal ${w.id} reorged out: the token's fee reversed`,
          },
          { client },
        );
        charged += tokenFee.amount;
      }
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
      await holdAgainAt(client, w, epoch, "a reorg", true);
      return epoch;
    },

    /**
     * A deep reorg an operator accepted undid the final block at which the withdrawal failed (its
     * hold voided, the gas of its cancel or reverted send booked): that gas is reversed (the tx is
     * no longer on the chain; what takes the nonce now is booked when it ends) and the amount is
     * held again under the next epoch. What the customer's available balance no longer covers
     * (they spent the refund) is owed on `receivable:reorg:<id>`: booked to their balance first
     * (kind reorg_hold), so the hold stands whole and its post pairs with the payment's one fact
     * (ledger/reorgShortfall.ts). Returns the epoch and that shortfall; the caller blocks the
     * customer's withdrawals when there is one.
     */
    async holdAgain(client: PoolClient, w: W): Promise<{ epoch: number; shortfall: bigint }> {
      const epoch = await unbookFailureFee(client, w);
      const next = withdrawalTransferIds(w.id, epoch);
      const { shortfall } = await coverReorgHold(client, {
        assetId: assetId(w),
        owner: w.customerId,
        counterparty: hot(w),
        amount: w.amount,
      });
      if (shortfall > 0n)
        await ledger.transfer(
          {
            id: next.shortfall,
            assetId: assetId(w),
            debit: `receivable:reorg:${w.customerId}`,
            credit: `user:${w.customerId}`,
            amount: shortfall,
            kind: "reorg_hold",
            memo: `withdrawal ${w.id} failed, refunded and spent, then its failure undone by a deep reorg: owed`,
          },
          { client },
        );
      await holdAgainAt(client, w, epoch, "a deep reorg undid its failure");
      return { epoch, shortfall };
    },

    /**
     * Failed (before broadcast, on a final block, or by an operator): release the current hold.
     * What a hold placed again after an undone failure booked on the receivable (holdAgain, this
     * epoch or one a reorg of its payment carried over) is given back, and its block lifted: the
     * withdrawal paid nothing after all. Only what is still owed on the receivable is given back:
     * the part repaid meanwhile is the customer's again (the hold's void returns it whole). The
     * part an operator wrote off is no loss any more: that write-off is reversed first
     * (writeOffReversal, audited), so it is given back to the receivable too, never to the customer.
     */
    async release(client: PoolClient, w: W) {
      const receivable = `receivable:reorg:${w.customerId}`;
      // Locked before the void locks two of them (lockReorgReceivable): what is owed read under
      // the lock.
      let stillOwed = 0n;
      if (w.reorgCount >= 1)
        stillOwed = await lockReorgReceivable(client, {
          assetId: assetId(w),
          owner: w.customerId,
          counterparty: hot(w),
        });
      await ledger.transfer(settlement(w, undefined), { client });
      let returned = false;
      for (let epoch = w.reorgCount; epoch >= 1; epoch--) {
        const ids = withdrawalTransferIds(w.id, epoch);
        const owed = await ledger.getTransfer(ids.shortfall);
        if (!owed) continue;
        returned = true;
        const reversal = await writeOffReversal(client, {
          assetId: assetId(w),
          owner: w.customerId,
          booked: owed.amount,
          owed: stillOwed,
          id: ids.shortfallWriteOffReversal,
          memo: `withdrawal ${w.id} failed again: the write-off of what it had made the customer owe reversed`,
        });
        if (reversal) {
          await ledger.transfer(reversal, { client });
          await recordWriteOffReversal(client, {
            owner: w.customerId,
            reversal,
            actor: "withdrawals",
            details: { withdrawal_id: w.id, epoch },
            log,
          });
          stillOwed += reversal.amount;
        }
        // What the customer repaid of it meanwhile (crediting's repayReceivables repays the
        // receivable, one account, from money that comes back to them) stays theirs: only what is
        // still owed is given back, so the receivable never ends owing the customer.
        const amount = owed.amount < stillOwed ? owed.amount : stillOwed;
        if (amount <= 0n) continue;
        stillOwed -= amount;
        await ledger.transfer(
          {
            id: ids.shortfallReturn,
            assetId: assetId(w),
            debit: `user:${w.customerId}`,
            credit: receivable,
            amount,
            kind: "reorg_hold",
            reverses: ids.shortfall,
            memo: `withdrawal ${w.id} failed again: what it had made the customer owe is given back`,
          },
          { client },
        );
      }
      if (returned)
        await clearWithdrawalShortfallBlock(client, {
          customerId: w.customerId,
          withdrawalId: w.id,
          reason: "the withdrawal failed again: its shortfall was given back",
        });
    },
  };
}
