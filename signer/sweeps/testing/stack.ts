/**
 * Test-only: the real pieces a sweep needs, wired on one anvil: indexer (synced on demand),
 * ledger deposit crediting, the signer's wallet broadcaster with a KMS-emulator hot wallet, the
 * ForwarderFactory deployed by that hot wallet, and the sweeper. Nothing is mocked.
 */
import {
  type Address,
  encodeDeployData,
  getAddress,
  getContractAddress,
  type Hex,
  parseEther,
} from "viem";
import { testToken } from "../../../chains/contracts/index.js";
import { createEvmAdapter, type EvmAdapter } from "../../../chains/index.js";
import type { HotWalletConfig } from "../../../foundation/config.js";
import {
  allocateDepositAddress,
  createFactsDoorbell,
  createIngestor,
  type Ingestor,
} from "../../../indexers/index.js";
import { anvilRpc, type Rpc, sendAndMine, syncToHead } from "../../../indexers/testing/chain.js";
import { type CreditingWorker, startCreditingWorker } from "../../../ledger/creditingWorker.js";
import { assetIdOf, bookTreasuryMove, createLedger, type Ledger } from "../../../ledger/index.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../../ops/testing/context.js";
import { capturedLogger, type LogLine } from "../../../ops/testing/logs.js";
import { deployForwarderFactory } from "../../deposit-addresses/index.js";
import { registerHotWallet } from "../../hotWalletKeys.js";
import type { KmsAccount } from "../../kmsAccount.js";
import { getTxOutcomes } from "../../outcomes.js";
import { signerTransactions } from "../../requests.js";
import { createSignerHarness, type SignerHarness, waitFor } from "../../testing/harness.js";
import { startWalletSigner, type WalletSigner } from "../../walletSigner.js";
import { createSweeper, type Sweeper } from "../createSweeper.js";

export const CHAIN_ID = 31337;
export const NATIVE = "0x0000000000000000000000000000000000000000";
/** anvil dev account 9 deploys the test token at nonce 0, so its address is known up front. */
export const TOKEN_DEPLOYER: Address = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720";
export const TOKEN: Address = getContractAddress({ from: TOKEN_DEPLOYER, nonce: 0n });
export const DEPOSITOR: Address = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";

export type SweepStack = {
  ctx: TestContext;
  rpc: Rpc;
  h: SignerHarness;
  hot: Address;
  factory: Address;
  ledger: Ledger;
  ingestor: Ingestor;
  crediting: CreditingWorker;
  sweeper: Sweeper;
  /**
   * The config's `hotWallets[]` as the signer role would have it: the harness's wallet, and each
   * wallet startWallet serves. The stack's sweepers read it (a test may take a wallet out).
   */
  hotWallets: HotWalletConfig[];
  signer: WalletSigner | undefined;
  startSigner: () => void;
  /**
   * Another hot wallet of the chain, registered and served as the signer role does (a rotation's
   * new wallet: it deployed no factory); its signer is stopped by close().
   */
  startWallet: (account: KmsAccount) => Promise<void>;
  /** Index to the head, then credit what is confirmed. */
  syncAndCredit: () => Promise<void>;
  mine: (n: number) => Promise<void>;
  allocate: (customerId: string) => Promise<Address>;
  /** A new deposit address of `customerId` sent `amount` wei by DEPOSITOR, confirmed and credited. */
  creditedDeposit: (customerId: string, amount: bigint) => Promise<Address>;
  /** A sweeper (and its adapter) asking `rpcUrls` in order, e.g. a lying proxy before the node. */
  sweeperOn: (rpcUrls: string[]) => { adapter: EvmAdapter; sweeper: Sweeper };
  /**
   * Another sweeper of the stack's chain logging to `lines` (each line as logged, in order, at info
   * and above), with its own adapter; `hotWallets`: the config's (default the stack's).
   */
  loggedSweeper: (hotWallets?: HotWalletConfig[]) => { sweeper: Sweeper; lines: LogLine[] };
  /** Mine and settle with `sweeper` until sweep `id` is no longer open; its status. */
  settleOne: (sweeper: Sweeper, id: string, timeoutMs?: number) => Promise<string>;
  deployToken: () => Promise<void>;
  /** posted debits − posted credits of a debit-normal account. */
  balanceOf: (asset: string, name: string) => Promise<bigint>;
  /**
   * What setup booked: `contracts deploy` books its own gas (debit fees:gas, credit custody:hot),
   * so the hot wallet's ledger account starts at −deployGas and fees:gas at +deployGas.
   */
  deployGas: bigint;
  /** Fee transfers booked before the test started (the factory deploy's gas). */
  setupFeeTransfers: number;
  userCredited: (asset: string, customerId: string) => Promise<bigint>;
  /** Mine and tick until no sweep (or none of `ids`) is open. */
  settleAll: (ids?: string[]) => Promise<void>;
  /**
   * Mine until every sweep's transaction is final (native value a sweep brought in is moved to
   * cold only then: a reorg may take it back).
   */
  sweepsFinal: () => Promise<void>;
  close: () => Promise<void>;
};

/** `chainConfig` is raw config-file input (amounts as decimal strings), validated by the context. */
export async function startSweepStack(
  chainConfig: Record<string, unknown> = {},
): Promise<SweepStack> {
  const ctx = await createTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        config: {
          confirmations: { kind: "blocks", blocks: 2 },
          traces: true,
          ...chainConfig,
        } as NonNullable<TestChainSpec["config"]>,
      },
    ],
  });
  const chain = ctx.config.chains[0]!;
  const rpc = anvilRpc(chain.rpcUrls[0]!);
  const h = await createSignerHarness(ctx);
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  const { contract } = await deployForwarderFactory({
    common: ctx.common,
    pool: ctx.db.pool,
    chain,
    client: adapter.client,
    account: h.account,
    sendRawTransaction: adapter.sendRawTransaction,
  });
  const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  const ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter,
    doorbell: createFactsDoorbell(ctx.queues),
    options: { batchBlocks: 50 },
  });
  const crediting = await startCreditingWorker({
    common: ctx.common,
    pool: ctx.db.pool,
    queues: ctx.queues,
    ledger,
    chains: ctx.config.chains,
    sweepIntervalMs: 600_000,
  });
  const hotWallets: HotWalletConfig[] = [
    { chain: chain.key, kmsKeyId: h.keyId, address: h.account.address },
  ];
  const sweeper = createSweeper({
    common: ctx.common,
    pool: ctx.db.pool,
    ledger,
    chains: ctx.config.chains,
    hotWallets,
    adapterFor: () => adapter,
    failedRetryAfterMs: 1500,
  });
  const mine = async (n: number) => {
    await rpc("anvil_mine", [`0x${n.toString(16)}`]);
  };
  const postedBalance = async (asset: string, name: string) => {
    const a = await ledger.getAccount({ assetId: assetIdOf(CHAIN_ID, asset), name });
    return a ? a.debitsPosted - a.creditsPosted : 0n;
  };
  const deployGas = await postedBalance(NATIVE, "fees:gas");
  const { rows: setup } = await ctx.db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'fee'",
  );
  const signerOf = (account: KmsAccount) =>
    startWalletSigner({
      common: ctx.common,
      pool: ctx.db.pool,
      queues: ctx.queues,
      chain,
      account: async () => account,
      databaseUrl: ctx.db.url,
      pollMs: 50,
    });
  const others: WalletSigner[] = [];
  const stack: SweepStack = {
    ctx,
    rpc,
    h,
    hot: h.account.address,
    factory: contract.address,
    ledger,
    ingestor,
    crediting,
    sweeper,
    hotWallets,
    signer: undefined,
    deployGas,
    setupFeeTransfers: setup[0]!.n,
    startSigner() {
      stack.signer = signerOf(h.account);
    },
    async startWallet(account) {
      await registerHotWallet(ctx.db.pool, chain, account.address);
      hotWallets.push({ chain: chain.key, kmsKeyId: account.keyId, address: account.address });
      others.push(signerOf(account));
    },
    async syncAndCredit() {
      await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
      await crediting.sweepOnce();
    },
    mine,
    async allocate(customerId) {
      const a = await allocateDepositAddress(
        { common: ctx.common, pool: ctx.db.pool },
        { chainId: CHAIN_ID, customerId },
      );
      return a.address;
    },
    async creditedDeposit(customerId, amount) {
      const address = await stack.allocate(customerId);
      await sendAndMine(rpc, {
        from: DEPOSITOR.toLowerCase() as Hex,
        to: address,
        value: amount,
        gas: 21_000n,
      });
      await mine(2);
      await stack.syncAndCredit();
      return address;
    },
    sweeperOn(rpcUrls) {
      const on = createEvmAdapter({ ...chain, rpcUrls }, { common: ctx.common });
      const sweeper = createSweeper({
        common: ctx.common,
        pool: ctx.db.pool,
        ledger,
        chains: ctx.config.chains,
        hotWallets,
        adapterFor: () => on,
      });
      return { adapter: on, sweeper };
    },
    loggedSweeper(wallets = hotWallets) {
      const { logger, lines } = capturedLogger();
      const common = { ...ctx.common, logger };
      const on = createEvmAdapter(chain, { common });
      const sweeper = createSweeper({
        common,
        pool: ctx.db.pool,
        ledger,
        chains: ctx.config.chains,
        hotWallets: wallets,
        adapterFor: () => on,
        failedRetryAfterMs: 1500,
      });
      return { sweeper, lines };
    },
    async settleOne(sweeper, id, timeoutMs = 90_000) {
      let status = "open";
      await waitFor(
        `sweep ${id} settled`,
        async () => {
          await mine(1);
          await sweeper.settle(CHAIN_ID);
          const { rows } = await ctx.db.pool.query<{ status: string }>(
            "SELECT status FROM custody.sweeps WHERE id = $1",
            [id],
          );
          status = rows[0]!.status;
          return status !== "open";
        },
        { timeoutMs, everyMs: 200 },
      );
      return status;
    },
    async deployToken() {
      const r = await sendAndMine(rpc, {
        from: TOKEN_DEPLOYER.toLowerCase() as Hex,
        data: encodeDeployData({ abi: testToken.abi, bytecode: testToken.bytecode }),
      });
      if (getAddress(r.contractAddress!) !== TOKEN)
        throw new Error("token not at the expected address");
    },
    async balanceOf(asset, name) {
      return postedBalance(asset, name);
    },
    async userCredited(asset, customerId) {
      const a = await ledger.getAccount({
        assetId: assetIdOf(CHAIN_ID, asset),
        name: `user:${customerId}`,
      });
      return a ? a.creditsPosted - a.debitsPosted : 0n;
    },
    async settleAll(ids) {
      await waitFor(
        "open sweeps settled",
        async () => {
          await mine(1);
          await sweeper.tick(CHAIN_ID);
          const { rows } = await ctx.db.pool.query(
            "SELECT count(*)::int AS n FROM custody.sweeps WHERE status = 'open' AND ($1::text[] IS NULL OR id = ANY($1))",
            [ids ?? null],
          );
          return rows[0].n === 0;
        },
        { timeoutMs: 90_000, everyMs: 200 },
      );
    },
    async sweepsFinal() {
      const { rows } = await ctx.db.pool.query<{ id: string }>("SELECT id FROM custody.sweeps");
      await waitFor(
        "sweeps final",
        async () => {
          await mine(1);
          const outcomes = await getTxOutcomes(ctx.db.pool, { requestIds: rows.map((r) => r.id) });
          return outcomes.every((o) => o.status === "finalized");
        },
        { timeoutMs: 60_000, everyMs: 100 },
      );
    },
    async close() {
      await stack.signer?.stop();
      for (const other of others) await other.stop();
      await crediting.stop();
      await ingestor.stop();
      await ledger.close();
      await h.close();
      await ctx.cleanup();
    },
  };
  return stack;
}

/**
 * A stack with TOKEN listed (sweep threshold 1, hot ceiling `ceiling`) and value above it moved to
 * `coldAddress`: the token deployed and the signer running (the token cold-move tests).
 */
export async function startTokenColdStack(args: {
  coldAddress: Address;
  reorgWindow: number;
  ceiling: bigint;
}): Promise<SweepStack> {
  const s = await startSweepStack({
    reorgWindow: args.reorgWindow,
    coldAddress: args.coldAddress,
    tokens: [
      {
        address: TOKEN,
        symbol: "TT",
        decimals: 18,
        sweepThreshold: "1",
        hotCeiling: args.ceiling.toString(),
      },
    ],
  });
  await s.deployToken();
  s.startSigner();
  return s;
}

/** TOKEN's balance of `holder` on the stack's chain. */
export function onChainToken(s: SweepStack, holder: Hex): Promise<bigint> {
  return s.h.client.readContract({
    address: TOKEN,
    abi: testToken.abi,
    functionName: "balanceOf",
    args: [holder],
  }) as Promise<bigint>;
}

/** Sweeps and cold moves not settled: open, or booked and not final yet. */
export async function unsettledSweepsAndColdMoves(s: SweepStack): Promise<number> {
  const { rows } = await s.ctx.db.pool.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM custody.sweeps
              WHERE status = 'open' OR (status = 'booked' AND final_at IS NULL))::int
          + (SELECT count(*) FROM custody.cold_moves
              WHERE status = 'open' OR (status = 'booked' AND final_at IS NULL))::int AS n`,
  );
  return rows[0]!.n;
}

/**
 * A reorg that takes out every block from `fromBlock` up (it must stay inside `reorgWindow`, above
 * the finalized height), then blocks mined, synced, credited and swept until every sweep and cold
 * move has reached a final block. A wallet frozen behind a nonce fails it, naming the requests
 * that are not terminal and their attempts' last refusal.
 */
export async function reorgFromAndSettle(
  s: SweepStack,
  fromBlock: bigint,
  reorgWindow: number,
  timeoutMs: number,
): Promise<void> {
  const depth = Number((await s.h.client.getBlockNumber()) - fromBlock) + 1;
  if (depth >= reorgWindow)
    throw new Error(`a reorg of ${depth} blocks is not inside the window of ${reorgWindow}`);
  await s.rpc("anvil_reorg", [depth, []]);
  await waitFor(
    "sweeps and cold moves final",
    async () => {
      await s.mine(1);
      await s.syncAndCredit();
      await s.sweeper.tick(CHAIN_ID);
      return (await unsettledSweepsAndColdMoves(s)) === 0;
    },
    { timeoutMs, everyMs: 100 },
  ).catch(async (err) => {
    const { rows } = await s.ctx.db.pool.query(
      `SELECT r.kind, r.status, r.value::text, a.status AS attempt, a.last_error_class
         FROM custody.tx_requests r LEFT JOIN custody.tx_attempts a ON a.request_id = r.id
        WHERE r.status NOT IN ('confirmed', 'failed')`,
    );
    throw new Error(`${(err as Error).message}: ${JSON.stringify(rows)}`);
  });
}

/**
 * The hot wallet funded with `value` (2 ETH) from DEPOSITOR, booked as an operator's treasury
 * funding ("hot wallet float") and then made final (`finalAfter` blocks mined, synced and
 * credited): its excess over the ceiling is the cold moves' to move.
 */
export async function fundHotWalletFinal(
  s: SweepStack,
  finalAfter: number,
  value = parseEther("2"),
): Promise<void> {
  const funded = await sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: s.hot,
    value,
    gas: 21_000n,
  });
  await s.mine(2);
  await s.syncAndCredit();
  await bookTreasuryMove(
    { common: s.ctx.common, pool: s.ctx.db.pool, ledger: s.ledger, signerTransactions },
    {
      move: "fund",
      chainId: CHAIN_ID,
      txHash: funded.transactionHash,
      wallet: s.hot,
      by: "ops-test",
      reason: "hot wallet float",
    },
  );
  await s.mine(finalAfter);
  await s.syncAndCredit();
}
