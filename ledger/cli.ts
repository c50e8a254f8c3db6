/** `custody-node ledger check`: the ledger's invariants, runnable any time against the live database. */
import type { Command } from "commander";
import { type ChainConfig, chainSchema } from "../chains/index.js";
import { parseAmount } from "../foundation/amounts.js";
import { type Common, createCommon } from "../foundation/common.js";
import { type Config, chainByKey, loadConfig } from "../foundation/config.js";
import { createPool, type Pool } from "../foundation/db.js";
import { type CheckReport, checkLedger } from "./check.js";
import { createLedger, type Ledger } from "./createLedger.js";
import {
  listReorgReceivables,
  type ReorgWriteOff,
  writeOffReorgReceivable,
} from "./reorgReceivables.js";
import {
  bookTreasuryMove,
  type SignerTransactions,
  type TreasuryBooking,
  type TreasuryMove,
  type TreasuryUnbooking,
  unbookTreasuryMove,
} from "./treasury.js";
import { type Unfreeze, unfreezeCustomer } from "./unfreeze.js";
import { clearWithdrawalBlocks, listWithdrawalBlocks } from "./withdrawalBlocks.js";

export function formatReport(report: CheckReport): string {
  const lines = [
    `ledger check ${report.ok ? "passed" : "FAILED"} at ${report.checkedAt}`,
    ...report.assets.map(
      (a) =>
        `  ${a.assetId}: ${a.accounts} accounts, posted ${a.debitsPosted} = ${a.creditsPosted}, pending ${a.debitsPending} = ${a.creditsPending}`,
    ),
    ...report.problems.map(
      (p) => `  PROBLEM ${p.type} ${p.assetId}${p.account ? ` ${p.account}` : ""}: ${p.detail}`,
    ),
  ];
  return lines.join("\n");
}

/**
 * What the ledger's commands read of modules above it, given by the composition root
 * (ops/commands.ts): the signer's transactions, which treasury bookings must not claim, and the
 * start's check of the chain's listed tokens against their contracts (ops/tokenConfig.ts), run
 * before the chain's assets are stored (a contradiction throws CONFIG_INVALID).
 */
export type LedgerCommandSources = {
  signerTransactions: SignerTransactions;
  checkTokens: (args: {
    common: Common;
    config: Pick<Config, "chains">;
    chain: ChainConfig;
  }) => Promise<void>;
};

export function registerCommands(program: Command, sources: LedgerCommandSources): void {
  const ledger = program.command("ledger").description("the double-entry ledger");
  ledger
    .command("check")
    .description(
      "prove per asset: debits = credits (posted and pending), balances = sum of transfers, holds match, no user account negative, each hold resolved at most once and never posted beyond its amount; exit 1 on any problem",
    )
    .option("--json", "print the report as JSON", false)
    .action(async (opts: { json: boolean }) => {
      await withPool("custody-node ledger check", async (pool) => {
        const report = await checkLedger(pool);
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
        if (!report.ok) process.exitCode = 1;
      });
    });

  const blocks = ledger
    .command("withdrawal-blocks")
    .description(
      "customers whose withdrawals are blocked (a reorg removed a deposit they had spent)",
    );
  blocks
    .command("list")
    .description("open blocks, oldest first")
    .option("--customer <id>", "one customer")
    .action(async (opts: { customer?: string }) => {
      await withPool("custody-node ledger", async (pool) => {
        for (const b of await listWithdrawalBlocks(pool, opts.customer))
          console.log(
            `${b.id}\t${b.customerId}\t${b.reason}\t${b.creditId ?? "-"}\t${b.createdAt.toISOString()}\t${JSON.stringify(b.details)}`,
          );
      });
    });
  blocks
    .command("clear <customer>")
    .description("clear a customer's open blocks (audited: who and why)")
    .requiredOption("--by <who>", "the operator clearing it")
    .requiredOption("--reason <text>", "why (e.g. the receivable was repaid)")
    .action(async (customer: string, opts: { by: string; reason: string }) => {
      await withPool("custody-node ledger", async (pool) => {
        const n = await clearWithdrawalBlocks(pool, { customerId: customer, ...opts });
        console.log(`cleared ${n} block(s) of ${customer}`);
        if (n === 0) process.exitCode = 1;
      });
    });

  const receivables = ledger
    .command("receivables")
    .description(
      "reorg receivables: what customers owe after a reorg removed a deposit they had spent",
    );
  receivables
    .command("list")
    .description("receivables with anything owed (posted) or pending (reorg hold not final yet)")
    .option("--customer <id>", "one customer")
    .action(async (opts: { customer?: string }) => {
      await withPool("custody-node ledger", async (pool) => {
        for (const r of await listReorgReceivables(pool, opts.customer))
          console.log(
            `${r.customerId}\t${r.assetId}\towed ${r.owed}\tpending ${r.pending}\trepaid or written off ${r.settled}`,
          );
      });
    });
  receivables
    .command("write-off <customer>")
    .description(
      "write off what a customer owes on receivable:reorg:<customer> to expense:reorg_loss (the treasury decided it will not come back); audited; idempotent per --ref; lifts the asset's withdrawal blocks once nothing is owed",
    )
    .requiredOption("--chain <chain>", "chain key or id")
    .option("--token <address>", "ERC-20 token (default native)")
    .option("--amount <base units>", "default: everything owed now")
    .requiredOption("--ref <id>", "the treasury's reference for the decision (the write-off's id)")
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "why")
    .action(
      async (
        customer: string,
        opts: {
          chain: string;
          token?: string;
          amount?: string;
          ref: string;
          by: string;
          reason: string;
        },
      ) => {
        await withChainLedger("custody-node ledger receivables", opts.chain, async (deps) => {
          await deps.ledger.ensureAssetsFromConfig([deps.chain]);
          const w = await writeOffReorgReceivable(deps, {
            chainId: deps.chain.chainId,
            asset: opts.token ?? "0x0000000000000000000000000000000000000000",
            customerId: customer,
            ...(opts.amount !== undefined ? { amount: parseAmount(opts.amount, "--amount") } : {}),
            ref: opts.ref,
            by: opts.by,
            reason: opts.reason,
          });
          console.log(writeOffLine(w));
        });
      },
    );

  ledger
    .command("unfreeze <customer>")
    .description(
      "unfreeze a customer's balance of one asset (e.g. so a withdrawal whose failure a deep reorg undid can be held again); audited: who and why; a balance not frozen is left as it is",
    )
    .requiredOption("--chain <chain>", "chain key or id")
    .option("--token <address>", "ERC-20 token (default native)")
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "why (e.g. who agreed to it)")
    .action(
      async (
        customer: string,
        opts: { chain: string; token?: string; by: string; reason: string },
      ) => {
        await withChainLedger("custody-node ledger unfreeze", opts.chain, async (deps) => {
          const u = await unfreezeCustomer(deps, {
            chainId: deps.chain.chainId,
            asset: opts.token ?? "0x0000000000000000000000000000000000000000",
            customerId: customer,
            by: opts.by,
            reason: opts.reason,
          });
          console.log(unfreezeLine(u));
        });
      },
    );

  registerTreasuryCommands(program, sources);
}

export function unfreezeLine(u: Unfreeze): string {
  return u.status === "unfrozen"
    ? `unfroze ${u.account} (${u.assetId})`
    : `${u.account} (${u.assetId}) was not frozen: nothing changed`;
}

export function writeOffLine(w: ReorgWriteOff): string {
  const head = `${w.status === "created" ? "wrote off" : "already wrote off"} ${w.amount} of receivable:reorg:${w.customerId} (${w.assetId}) to expense:reorg_loss (transfer ${w.transferId})`;
  const rest =
    w.stillOwed > 0n
      ? `; ${w.stillOwed} still owed, withdrawals stay blocked`
      : `; nothing owed${w.blocksCleared.length > 0 ? `, withdrawal block(s) ${w.blocksCleared.join(", ")} lifted` : ""}`;
  return head + rest;
}

type TreasuryOpts = {
  chain: string;
  tx: string;
  wallet: string;
  token?: string;
  amount?: string;
  fee?: string;
  position?: string;
  by: string;
  reason: string;
};

async function runTreasury(
  move: TreasuryMove,
  opts: TreasuryOpts,
  sources: LedgerCommandSources,
): Promise<void> {
  await withTreasuryLedger(move, opts.chain, async ({ chain, config, common, pool, ledger }) => {
    // Stored decimals are what the reports format amounts with: not from a config the chain
    // contradicts (the start refuses it; this command ran without it).
    await sources.checkTokens({ common, config, chain });
    await ledger.ensureAssetsFromConfig([chain]);
    const booking = await bookTreasuryMove(
      { common, pool, ledger, signerTransactions: sources.signerTransactions },
      {
        move,
        chainId: chain.chainId,
        txHash: opts.tx,
        wallet: opts.wallet,
        ...(opts.token ? { token: opts.token } : {}),
        ...(opts.amount !== undefined ? { amount: parseAmount(opts.amount, "--amount") } : {}),
        ...(opts.fee !== undefined ? { fee: parseAmount(opts.fee, "--fee") } : {}),
        ...(opts.position ? { position: opts.position } : {}),
        by: opts.by,
        reason: opts.reason,
      },
    );
    console.log(treasuryLine(booking));
  });
}

/** Runs a treasury command's `body` with the chain named by --chain and a ledger, then closes them. */
function withTreasuryLedger(
  command: string,
  chainKey: string,
  body: (deps: {
    chain: ChainConfig;
    config: Config;
    common: Common;
    pool: Pool;
    ledger: Ledger;
  }) => Promise<void>,
): Promise<void> {
  return withChainLedger(`custody-node treasury ${command}`, chainKey, body);
}

/** Runs a command's `body` with a one-connection pool, then closes it. */
async function withPool(applicationName: string, body: (pool: Pool) => Promise<void>) {
  const config = loadConfig(chainSchema);
  const pool = createPool(config.env.DATABASE_URL, { max: 1, applicationName });
  try {
    await body(pool);
  } finally {
    await pool.end();
  }
}

/** Runs a command's `body` with the chain named by --chain and a ledger, then closes them. */
async function withChainLedger(
  applicationName: string,
  chainKey: string,
  body: (deps: {
    chain: ChainConfig;
    config: Config;
    common: Common;
    pool: Pool;
    ledger: Ledger;
  }) => Promise<void>,
): Promise<void> {
  const config = loadConfig(chainSchema);
  const chain = chainByKey(config, chainKey);
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 2, applicationName });
  const ledger = createLedger({ common, pool });
  try {
    await body({ chain, config, common, pool, ledger });
  } finally {
    await ledger.close();
    await common.shutdown.kill("command done").catch(() => {});
    await pool.end();
  }
}

export function treasuryLine(b: TreasuryBooking): string {
  const parts = b.transfers.map(
    (t) =>
      `${t.status === "created" ? "booked" : "already booked"} ${t.kind} ${t.amount} (transfer ${t.id})`,
  );
  return `treasury ${b.move} ${b.txHash} on chain ${b.chainId}: ${parts.join("; ")}${b.factsIndexed ? "" : " — chain fact not indexed yet: reconciliation checks the amount once it is"}`;
}

async function runUnbook(opts: { chain: string; tx: string; by: string; reason: string }) {
  await withTreasuryLedger("unbook", opts.chain, async ({ chain, common, pool, ledger }) => {
    const unbooking = await unbookTreasuryMove(
      { common, pool, ledger },
      { chainId: chain.chainId, txHash: opts.tx, by: opts.by, reason: opts.reason },
    );
    console.log(unbookLine(unbooking));
  });
}

export function unbookLine(u: TreasuryUnbooking): string {
  const parts = u.transfers.map(
    (t) =>
      `${t.status === "created" ? "reversed" : "already reversed"} ${t.kind} ${t.amount} (transfer ${t.reverses} by ${t.id})`,
  );
  return `treasury unbook ${u.txHash} on chain ${u.chainId} (orphaned at block ${u.orphanedBlock}, final at ${u.finalized}): ${parts.join("; ")}`;
}

function treasuryCommand(
  parent: Command,
  name: string,
  move: TreasuryMove,
  description: string,
  sources: LedgerCommandSources,
) {
  return parent
    .command(name)
    .description(description)
    .requiredOption("--chain <chain>", "chain key or id")
    .requiredOption("--tx <hash>", "the transaction (chain fact) that moved the value")
    .requiredOption("--wallet <address>", "the hot wallet")
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "why")
    .option(
      "--position <position>",
      "the fact's position: tx, transfer:<n> or trace:<path> (default tx / transfer:0); gas: always fee",
    )
    .action((opts: TreasuryOpts) => runTreasury(move, opts, sources));
}

function registerTreasuryCommands(program: Command, sources: LedgerCommandSources): void {
  const treasury = program
    .command("treasury")
    .description(
      "book the operator's own moves (hot-wallet funding, defunding, deploy gas) against their chain facts, audited; idempotent per tx",
    );
  treasuryCommand(
    treasury,
    "fund",
    "fund",
    "book a hot wallet's funding: debit custody:hot, credit treasury",
    sources,
  )
    .option("--token <address>", "ERC-20 token (default native)")
    .option("--amount <base units>", "required until the indexer has the fact; then must agree");
  treasuryCommand(
    treasury,
    "defund",
    "defund",
    "book value sent out of a hot wallet to the operator: debit treasury, credit custody:hot; and its gas",
    sources,
  )
    .option("--token <address>", "ERC-20 token (default native)")
    .option("--amount <base units>", "required until the indexer has the fact; then must agree")
    .option("--fee <wei>", "gas the wallet paid (required until the indexer has the fee fact)");
  for (const name of ["gas", "deploy-gas"])
    treasuryCommand(
      treasury,
      name,
      "gas",
      "book the gas a hot wallet paid for an operator transaction (e.g. the factory deploy, a `tx-requests fill-nonce`): debit fees:gas, credit custody:hot",
      sources,
    ).option("--amount <wei>", "required until the indexer has the fee fact; then must agree");
  treasury
    .command("unbook")
    .description(
      "reverse the treasury bookings of a transaction a reorg took off the chain for good (every fact of it orphaned, the orphaned height final); audited; idempotent",
    )
    .requiredOption("--chain <chain>", "chain key or id")
    .requiredOption("--tx <hash>", "the booked transaction")
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "why")
    .action(runUnbook);
}
