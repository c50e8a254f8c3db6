/**
 * On-chain balances of custody addresses at the run's block, through the chains adapter (the ledger
 * itself never builds an RPC client). Calls go out in batches of `batchSize` (address, asset)
 * reads, one batch at a time and at most `requestsPerSecond` batches a second, so a run over many
 * addresses stays inside a provider's rate limit. Native balances: one `eth_call` of creation code
 * that returns the balance of each address appended to it (`balanceLoopCode`, up to 768 a call);
 * ERC-20 balances the same way, one token a call (`tokenBalanceLoopCode`); unless the chain turns
 * it off (`balanceLoop: false`) or its node refuses it. The rest, and every read then: through
 * Multicall3 (`getEthBalance` and ERC-20 `balanceOf` in one `aggregate3` eth_call) where the chain
 * has it, else as JSON-RPC batches of `eth_getBalance` and `eth_call`.
 *
 * Every read names the block by its hash where the run knows it (EIP-1898, `requireCanonical`): by
 * number, an endpoint on another fork at that height answers for its own block there (a false
 * break, or a real shortfall hidden). By hash, a node without our block (another fork, lagging,
 * pruned) refuses, and a refusal is never a balance: the next endpoint is asked, and when none
 * knows the block the read fails and the run with it.
 */
import { type Address, encodeFunctionData, erc20Abi, type Hex } from "viem";
import { multicall3For, RpcResponseError } from "../../chains/index.js";
import { mapLimit } from "../../foundation/mapLimit.js";
import type { OnchainBalance } from "./balances.js";
import { BalanceUnreadableError } from "./errors.js";
import type { ChainReader } from "./sources.js";
import type { CustodyKind } from "./types.js";

export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

export type BalanceReadOptions = {
  /** (address, asset) reads per request: one multicall or one JSON-RPC batch. */
  batchSize: number;
  /** Requests started per second at most (the provider's rate limit). */
  requestsPerSecond: number;
  /** Multicall3 address (default: the chain registry's; none: JSON-RPC batches). */
  multicall3?: Address | undefined;
  /** Balances through creation code (`balanceLoopCode`, `tokenBalanceLoopCode`); default true. */
  balanceLoop?: boolean | undefined;
  /**
   * Requests in flight at once at most (default 4); each still waits for the rate limit to start.
   * One at a time, a read of 10,000 balances waited for each answer in turn behind whatever else
   * the process was doing (docs/scale.md, session 18).
   */
  inFlight?: number | undefined;
};

export const DEFAULT_BALANCE_READS: BalanceReadOptions = {
  batchSize: 500,
  requestsPerSecond: 20,
  inFlight: 4,
};

/** Spaces request starts `1000 / rps` ms apart; one per chain, shared by its runs. */
export function createRateLimiter(requestsPerSecond: number): () => Promise<void> {
  const interval = 1000 / requestsPerSecond;
  let next = 0;
  return async () => {
    const now = performance.now();
    const at = Math.max(now, next);
    next = at + interval;
    if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));
  };
}

type Read = { address: string; kind: CustodyKind; token: string };

/** The block parameter of a read: EIP-1898's block hash object, or a number. */
type BlockParam = string | { blockHash: string; requireCanonical: true };

/**
 * Every read is of chain data at one block: a node's JSON-RPC error (our block unknown to it,
 * a number past its head) says nothing of the balance, so the next endpoint is asked.
 */
const BALANCE_READ = { refusalMovesOn: true } as const;

export async function readCustodyBalances(
  adapter: ChainReader,
  args: {
    /** The addresses to read (lowercase) and their kind. */
    addresses: ReadonlyMap<string, CustodyKind>;
    tokens: readonly string[];
    block: number;
    /**
     * Our canonical block's hash at `block` (the indexer's): every read is of that block. Absent
     * (a run at a block no longer stored, far below finality): the reads name the number.
     */
    blockHash?: string | undefined;
    options?: BalanceReadOptions;
    /** Waits for the chain's rate limit (default: one limiter for this call). */
    limit?: () => Promise<void>;
  },
): Promise<OnchainBalance[]> {
  const chainId = adapter.chain.chainId;
  const options = args.options ?? DEFAULT_BALANCE_READS;
  const limit = args.limit ?? createRateLimiter(options.requestsPerSecond);
  const multicall3 = options.multicall3 ?? multicall3For(chainId);
  const addresses = [...args.addresses.keys()].sort();
  const reads: Read[] = [];
  for (const address of addresses) {
    const kind = args.addresses.get(address)!;
    reads.push({ address, kind, token: ZERO_ADDRESS });
    for (const token of args.tokens)
      if (token !== ZERO_ADDRESS) reads.push({ address, kind, token });
  }
  const blockTag: BlockParam = args.blockHash
    ? { blockHash: args.blockHash, requireCanonical: true }
    : `0x${args.block.toString(16)}`;
  const balances: (bigint | null)[] = new Array(reads.length).fill(null);
  // Positions in `reads`: native ones and each token's for the balance loops, the others (and any
  // a loop could not read) for Multicall3 or batches.
  const loops = new Map<string, number[]>([[ZERO_ADDRESS, []]]);
  const rest: number[] = [];
  const loop = options.balanceLoop ?? true;
  reads.forEach((r, i) => {
    if (!loop) rest.push(i);
    else {
      const positions = loops.get(r.token);
      if (positions) positions.push(i);
      else loops.set(r.token, [i]);
    }
  });
  const inFlight = options.inFlight ?? DEFAULT_BALANCE_READS.inFlight!;
  const perLoop = Math.min(options.batchSize, BALANCE_LOOP_MAX);
  const loopCalls: { token: string; chunk: number[] }[] = [];
  for (const [token, positions] of loops)
    for (let i = 0; i < positions.length; i += perLoop)
      loopCalls.push({ token, chunk: positions.slice(i, i + perLoop) });
  let refused = false;
  const loopCall = async ({ token, chunk }: { token: string; chunk: number[] }) => {
    if (refused) {
      rest.push(...chunk);
      return;
    }
    await limit();
    let got: bigint[];
    try {
      got = await viaBalanceLoop(
        adapter,
        token,
        chunk.map((j) => reads[j]!.address),
        blockTag,
      );
    } catch (error) {
      // The node's JSON-RPC error: these reads go through Multicall3 or batches, which tell an
      // unreadable balance apart from 0. A native loop fails so only when the node refuses
      // creation code in eth_call (or EIP-3541 refuses a created code starting with 0xef): every
      // later loop goes the other way too. A token's loop also reverts when one of its balanceOf
      // calls fails or answers less than a word (no code at the token, a balanceOf that writes).
      // No endpoint that knows the run's block also lands here: the other way fails the same.
      // Any other failure fails the read, as on the other paths.
      if (!(error instanceof RpcResponseError)) throw error;
      rest.push(...chunk);
      if (token === ZERO_ADDRESS) refused = true;
      return;
    }
    chunk.forEach((j, k) => {
      balances[j] = got[k]!;
    });
  };
  // The first call (the natives', when there are any) alone: a node that refuses creation code
  // refuses it once, not once for every call already in flight.
  const [first, ...later] = loopCalls;
  if (first) await loopCall(first);
  await mapLimit(later, inFlight, loopCall);
  rest.sort((a, b) => a - b);
  const restCalls: number[][] = [];
  for (let i = 0; i < rest.length; i += options.batchSize)
    restCalls.push(rest.slice(i, i + options.batchSize));
  await mapLimit(restCalls, inFlight, async (chunk) => {
    const chunkReads = chunk.map((j) => reads[j]!);
    await limit();
    const got = multicall3
      ? await viaMulticall(adapter, multicall3, chunkReads, blockTag)
      : await viaBatch(adapter, chunkReads, blockTag);
    chunk.forEach((j, k) => {
      balances[j] = got[k] ?? null;
    });
  });
  return reads.map((r, j) => {
    const balance = balances[j];
    if (balance === null || balance === undefined)
      throw new BalanceUnreadableError(chainId, r.address, r.token, "no data");
    return { address: r.address, kind: r.kind, assetId: `${chainId}:${r.token}`, balance };
  });
}

/**
 * Addresses per balance-loop call: the returned words are the created code, at most 24,576 bytes
 * (EIP-170).
 */
export const BALANCE_LOOP_MAX = 768;

/** From offset 11 of `balanceLoopCode` to its end (35 bytes in all, then the addresses). */
const LOOP = "5b81811015601e578051318152602001600b565b506000f3";

/**
 * Creation code returning the native balance of each of `addresses` as 32-byte words, in order.
 * The addresses follow the code as 32-byte words; it copies them to memory, replaces each word
 * with `BALANCE` of it and returns them (the "created code", which eth_call hands back). 32 bytes
 * of calldata a read instead of Multicall3's 192, and one opcode a read for the node: at 10M
 * (docs/scale.md, session 16) the on-chain read of an incremental run about halved.
 *
 *   0  PUSH2 n·32  DUP1  PUSH1 35  PUSH1 0  CODECOPY                 mem[0..n·32) = the words
 *   9  PUSH1 0                                                     i = 0        [size, i]
 *   11 JUMPDEST  DUP2 DUP2 LT ISZERO PUSH1 30 JUMPI                 i < size, else to 30
 *   19 DUP1 MLOAD BALANCE DUP2 MSTORE                               mem[i] = balance(mem[i])
 *   24 PUSH1 32 ADD PUSH1 11 JUMP                                   i += 32
 *   30 JUMPDEST POP PUSH1 0 RETURN                                  return mem[0..size)
 */
export function balanceLoopCode(addresses: readonly string[]): Hex {
  const { size, words } = loopAddresses(addresses);
  return `0x61${size}8060236000396000${LOOP}${words}` as Hex;
}

/**
 * What both loops take: `addresses` (1 to 768, each checked) as the appended 32-byte words, and
 * their length in bytes as PUSH2's 4 hex digits.
 */
function loopAddresses(addresses: readonly string[]): { size: string; words: string } {
  if (addresses.length === 0 || addresses.length > BALANCE_LOOP_MAX)
    throw new Error(
      `a balance loop reads 1 to ${BALANCE_LOOP_MAX} addresses, not ${addresses.length}`,
    );
  for (const a of addresses)
    if (!ADDRESS.test(a)) throw new Error(`bad balance read address: ${a}`);
  return {
    size: (addresses.length * 32).toString(16).padStart(4, "0"),
    words: addresses.map((a) => word(a.slice(2).toLowerCase())).join(""),
  };
}

/** Offsets in `tokenBalanceLoopCode`: the loop, the revert, the return, the appended words. */
const TOKEN_LOOP_AT = 0x0b;
const TOKEN_FAIL_AT = 0x52;
const TOKEN_END_AT = 0x57;
const TOKEN_CODE_BYTES = 0x5c;

/**
 * Creation code returning ERC-20 `balanceOf` of `token` for each of `addresses` as 32-byte words,
 * in order, the same way as `balanceLoopCode`: each word is replaced by what a `STATICCALL` of
 * `balanceOf(word)` on the token returned (its first 32 bytes). If any call fails or returns less
 * than a word, the whole call reverts (the caller reads those addresses another way, where an
 * unreadable balance is told apart from 0). 64 bytes of calldata a read instead of Multicall3's
 * 192. At most 768 addresses (the returned words are the created code, EIP-170).
 *
 *   0  PUSH2 n·32  DUP1  PUSH1 92  PUSH1 0  CODECOPY                mem[0..n·32) = the words
 *   9  PUSH1 0                                                    i = 0        [size, i]
 *   11 JUMPDEST  DUP2 DUP2 LT ISZERO PUSH1 87 JUMPI                i < size, else to 87
 *   19 PUSH4 balanceOf PUSH1 224 SHL DUP3 MSTORE                   mem[size] = selector
 *   29 DUP1 MLOAD DUP3 PUSH1 4 ADD MSTORE                          mem[size+4] = mem[i]
 *   36 PUSH1 32 DUP2 PUSH1 36 DUP5 PUSH20 token GAS STATICCALL     mem[i] = token.balanceOf(mem[i])
 *   65 ISZERO PUSH1 82 JUMPI                                      failed: to 82
 *   69 PUSH1 32 RETURNDATASIZE LT PUSH1 82 JUMPI                  short answer: to 82
 *   76 PUSH1 32 ADD PUSH1 11 JUMP                                 i += 32
 *   82 JUMPDEST PUSH1 0 DUP1 REVERT
 *   87 JUMPDEST POP PUSH1 0 RETURN                                return mem[0..size)
 */
export function tokenBalanceLoopCode(token: string, addresses: readonly string[]): Hex {
  if (!ADDRESS.test(token)) throw new Error(`bad balance read token: ${token}`);
  const { size, words } = loopAddresses(addresses);
  const b = (n: number) => n.toString(16).padStart(2, "0");
  const code = [
    `61${size}8060${b(TOKEN_CODE_BYTES)}6000396000`,
    `5b8181101560${b(TOKEN_END_AT)}57`,
    `63${BALANCE_OF}60e01b8252`,
    "8051826004015260208160248473",
    token.slice(2).toLowerCase(),
    `5afa1560${b(TOKEN_FAIL_AT)}5760203d1060${b(TOKEN_FAIL_AT)}57`,
    `60200160${b(TOKEN_LOOP_AT)}56`,
    "5b600080fd",
    "5b506000f3",
  ].join("");
  return `0x${code}${words}` as Hex;
}

/** One balance loop call: `token`'s balanceOf (the zero address: native balances) of `addresses`. */
async function viaBalanceLoop(
  adapter: ChainReader,
  token: string,
  addresses: readonly string[],
  blockTag: BlockParam,
): Promise<bigint[]> {
  const code =
    token === ZERO_ADDRESS ? balanceLoopCode(addresses) : tokenBalanceLoopCode(token, addresses);
  const raw = await adapter.rpc.request<Hex>("eth_call", [{ data: code }, blockTag], BALANCE_READ);
  if (raw.length !== 2 + addresses.length * 64)
    throw new Error(
      `balance loop returned ${(raw.length - 2) / 2} bytes for ${addresses.length} addresses`,
    );
  return addresses.map((_, i) => BigInt(`0x${raw.slice(2 + i * 64, 2 + (i + 1) * 64)}`));
}

async function viaMulticall(
  adapter: ChainReader,
  multicall3: Address,
  reads: readonly Read[],
  blockTag: BlockParam,
): Promise<(bigint | null)[]> {
  const data = encodeBalanceReads(
    reads.map((r) =>
      r.token === ZERO_ADDRESS
        ? { target: multicall3, selector: GET_ETH_BALANCE, address: r.address }
        : { target: r.token, selector: BALANCE_OF, address: r.address },
    ),
  );
  const raw = await adapter.rpc.request<Hex>(
    "eth_call",
    [{ to: multicall3, data }, blockTag],
    BALANCE_READ,
  );
  return decodeBalanceResults(raw, reads.length);
}

/** `aggregate3((address,bool,bytes)[])` of Multicall3. */
const AGGREGATE3 = "82ad56cb";
/** Multicall3 `getEthBalance(address)`. */
export const GET_ETH_BALANCE = "4d2301cc";
/** ERC-20 `balanceOf(address)`. */
export const BALANCE_OF = "70a08231";
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const word = (hex: string) => hex.padStart(64, "0");

/**
 * `aggregate3` calldata for balance reads, each `selector(address)` on `target` with
 * allowFailure false. ABI-encoded by hand: every call has the same 36-byte shape, and viem's
 * generic encoder and decoder took ~1.2 s of CPU for 10,000 reads on the loaded bench machine (an
 * incremental run reads every active deposit address). onchain.test.ts checks both against viem.
 */
export function encodeBalanceReads(
  calls: readonly { target: string; selector: string; address: string }[],
): Hex {
  const n = calls.length;
  const out: string[] = ["0x", AGGREGATE3, word("20"), word(n.toString(16))];
  // Each tuple (target, allowFailure, offset of callData, its length, 36 bytes padded to 64) is
  // 192 bytes; offsets count from the first offset word.
  for (let i = 0; i < n; i++) out.push(word((n * 32 + i * 192).toString(16)));
  for (const c of calls) {
    if (!ADDRESS.test(c.target) || !ADDRESS.test(c.address) || !/^[0-9a-f]{8}$/.test(c.selector))
      throw new Error(`bad balance read: ${c.target} ${c.selector} ${c.address}`);
    out.push(
      word(c.target.slice(2).toLowerCase()),
      word("0"),
      word("60"),
      word("24"),
      c.selector,
      word(c.address.slice(2).toLowerCase()),
      "0".repeat(56),
    );
  }
  return out.join("") as Hex;
}

/**
 * The first 32 bytes of each call's return data (both reads return one uint256) from an
 * `aggregate3` result of `n` calls, following the ABI offsets; anything malformed throws. A call
 * that returned less than a word (a `balanceOf` on an address with no code "succeeds" with no data)
 * is null: unknown, never 0.
 */
export function decodeBalanceResults(data: Hex, n: number): (bigint | null)[] {
  const hex = data.slice(2);
  const bytes = hex.length / 2;
  const at = (offset: number): number => {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + 32 > bytes)
      throw new Error(`malformed aggregate3 result: offset ${offset} of ${bytes} bytes`);
    const w = hex.slice(offset * 2, offset * 2 + 64);
    if (!/^0{48}[0-9a-fA-F]{16}$/.test(w))
      throw new Error(`malformed aggregate3 result: word at ${offset} is not a small number`);
    return Number.parseInt(w, 16);
  };
  const array = at(0);
  const length = at(array);
  if (length !== n) throw new Error(`aggregate3 returned ${length} results for ${n} calls`);
  const first = array + 32;
  const out: (bigint | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const tuple = first + at(first + i * 32);
    if (at(tuple) !== 1) throw new Error(`aggregate3 call ${i} failed`);
    const start = tuple + at(tuple + 32);
    const size = at(start);
    if (start + 32 + size > bytes)
      throw new Error(`malformed aggregate3 result: call ${i} data past the end`);
    out[i] = size < 32 ? null : BigInt(`0x${hex.slice((start + 32) * 2, (start + 64) * 2)}`);
  }
  return out;
}

async function viaBatch(adapter: ChainReader, reads: readonly Read[], blockTag: BlockParam) {
  const raw = await adapter.rpc.batch<string>(
    reads.map((r) =>
      r.token === ZERO_ADDRESS
        ? { method: "eth_getBalance", params: [r.address, blockTag] }
        : {
            method: "eth_call",
            params: [
              {
                to: r.token,
                data: encodeFunctionData({
                  abi: erc20Abi,
                  functionName: "balanceOf",
                  args: [r.address as Address],
                }),
              },
              blockTag,
            ],
          },
    ),
    BALANCE_READ,
  );
  // eth_getBalance always returns a quantity; an eth_call to an address with no code returns "0x".
  return raw.map((r) => (r.length > 2 ? BigInt(r) : null));
}
