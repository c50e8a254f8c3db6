/**
 * The start's check of each served chain's listed tokens against their contracts
 * (chains/tokenCheck.ts: code at the address, `decimals()` equal to the config's). What the nodes
 * answer within START_WAIT_MS decides the start: a contradiction refuses it (CONFIG_INVALID naming
 * the fields). A node that does not answer is no evidence either way: the service starts, /readyz
 * lists `tokens:<chain>` as degraded ("not checked yet": not failing, which would take an api task
 * out of the ALB during an RPC outage) and the check is asked again every RETRY_MS until a node
 * answers. A contradiction found then keeps `tokens:<chain>` failing, naming the fields, and is
 * logged (TOKEN_CONFIG_MISMATCH); the next start is refused. A CLI command that stores the
 * chain's assets (`treasury …`) runs the same check first (`checkChainTokens`).
 */
import { type ChainConfig, checkTokens, createEvmAdapter } from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Config } from "../foundation/config.js";
import { ConfigError } from "../foundation/errors.js";
import type { Health, HealthCheckResult } from "../foundation/health.js";

/** How long the start waits for the nodes' first answer before it goes on without it. */
const START_WAIT_MS = 10_000;
/** How often an unanswered check is asked again. */
const RETRY_MS = 5_000;

type State =
  | { kind: "pending"; why: string }
  | { kind: "ok"; unchecked: string[] }
  | { kind: "wrong"; issues: { field: string; message: string }[] };

/** Resolves once every served chain's tokens were answered for, or START_WAIT_MS passed. */
export async function checkTokenConfig(args: {
  common: Common;
  config: Pick<Config, "chains">;
  chains: readonly ChainConfig[];
  health: Health;
}): Promise<void> {
  const { common, config } = args;
  const log = common.logger.child({ component: "token-config" });
  const answered: Promise<State>[] = [];
  /** The contradictions found so far, of every chain. */
  const wrong: { field: string; message: string }[] = [];
  for (const chain of args.chains) {
    if (chain.tokens.length === 0) continue;
    const index = config.chains.findIndex((c) => c.chainId === chain.chainId);
    const prefix = `chains[${index}].`;
    const rpc = createEvmAdapter(chain, { common }).rpc;
    let state: State = { kind: "pending", why: "no node has answered yet" };
    args.health.add({
      name: `tokens:${chain.key}`,
      check: async (): Promise<HealthCheckResult> => {
        // Unanswered is no evidence either way: degraded, not failing. A failing /readyz takes an
        // api task out of the ALB (and ECS replaces it): an RPC outage at a task's start would
        // then take the console and API down with it.
        if (state.kind === "pending")
          return {
            ok: true,
            degraded: true,
            detail: `listed tokens not checked yet against their contracts (${state.why})`,
          };
        if (state.kind === "wrong")
          return {
            ok: false,
            detail: state.issues.map((i) => `${i.field}: ${i.message}`).join("; "),
          };
        return state.unchecked.length === 0
          ? { ok: true }
          : {
              ok: true,
              degraded: true,
              detail: `no decimals() to check the configured decimals against: ${state.unchecked.join(", ")}`,
            };
      },
    });
    const attempt = async (): Promise<State> => {
      for (;;) {
        try {
          const r = await checkTokens(rpc, chain.tokens);
          if (r.problems.length > 0)
            return {
              kind: "wrong",
              issues: r.problems.map((p) => ({ field: prefix + p.field, message: p.message })),
            };
          if (r.unchecked.length > 0)
            log.warn({
              msg: "listed tokens without decimals(): their configured decimals are not checked",
              chain_id: chain.chainId,
              tokens: r.unchecked,
            });
          return { kind: "ok", unchecked: r.unchecked };
        } catch (error) {
          if (common.shutdown.isShuttingDown()) return state;
          state = { kind: "pending", why: (error as Error).message };
          log.warn({
            msg: "listed tokens not checked: no node answered; asking again",
            chain_id: chain.chainId,
            err: error,
          });
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
          if (common.shutdown.isShuttingDown()) return state;
        }
      }
    };
    answered.push(
      attempt().then((s) => {
        state = s;
        if (s.kind === "wrong") {
          wrong.push(...s.issues);
          log.error({
            msg: "listed token config contradicts the chain",
            code: "TOKEN_CONFIG_MISMATCH",
            chain_id: chain.chainId,
            issues: s.issues,
          });
        }
        return s;
      }),
    );
  }
  if (answered.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(answered),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, START_WAIT_MS);
    }),
  ]);
  clearTimeout(timer);
  // What was answered by now decides; a chain still unanswered is left to /readyz (and the log).
  if (wrong.length > 0) throw new ConfigError([...wrong]);
}

/**
 * The start's check for a CLI command that stores one chain's assets (ledger/cli.ts `treasury …`,
 * given by ops/commands.ts): storing them writes the config's decimals over the ones the checked
 * start stored, which the reconciliation report formats amounts with. A contradiction refuses the
 * command (CONFIG_INVALID naming the fields) before anything is stored. Nodes that do not answer
 * within START_WAIT_MS are no evidence either way: it goes on, as the start does (logged).
 */
export async function checkChainTokens({
  common,
  config,
  chain,
}: {
  common: Common;
  config: Pick<Config, "chains">;
  chain: ChainConfig;
}): Promise<void> {
  if (chain.tokens.length === 0) return;
  const prefix = `chains[${config.chains.findIndex((c) => c.chainId === chain.chainId)}].`;
  const rpc = createEvmAdapter(chain, { common }).rpc;
  let timer: NodeJS.Timeout | undefined;
  const answer = await Promise.race([
    checkTokens(rpc, chain.tokens).catch((error: unknown) => error as Error),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), START_WAIT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (answer === undefined || answer instanceof Error) {
    common.logger.warn({
      msg: "listed tokens not checked: no node answered; going on",
      chain_id: chain.chainId,
      ...(answer ? { err: answer } : {}),
    });
    return;
  }
  if (answer.problems.length > 0)
    throw new ConfigError(
      answer.problems.map((p) => ({ field: prefix + p.field, message: p.message })),
    );
}
