// Sequential specifications for the checker: a register per key (read, write, compare-and-set), a
// bank (accounts moved by guarded multi-key transactions, read in one snapshot), and an
// append-only list per key (appends guarded by the list they extend).
import { assert } from '../../util/index.ts';
import { hashString, IMPOSSIBLE } from './linearizability.ts';
import type { Model } from './linearizability.ts';

// ---- register ----

export type RegisterInput =
  | { f: 'read'; key: string }
  | { f: 'write'; key: string; value: string }
  | { f: 'delete'; key: string }
  /** etcd Txn: if value(key) == from then put(key, to). */
  | { f: 'cas'; key: string; from: string; to: string };

/** read: the value (null = no key); write: nothing; delete: how many keys it deleted; cas: whether the compare held. */
export type RegisterOutput =
  | { value: string | null }
  | { deleted: number }
  | { succeeded: boolean }
  | { written: true }
  | Record<string, never>;

/** The register's state: its value, or null before the first write (etcd: the key does not exist). */
export type RegisterState = string | null;

export const registerModel: Model<RegisterState, RegisterInput, RegisterOutput> = {
  name: 'register',
  init: () => null,
  step(state, input, output) {
    switch (input.f) {
      case 'read':
        if (output === null) return state;
        return 'value' in output && output.value === state ? state : IMPOSSIBLE;
      case 'write':
        return input.value;
      case 'delete':
        if (output === null) return null;
        return 'deleted' in output && output.deleted === (state === null ? 0 : 1) ? null : IMPOSSIBLE;
      case 'cas': {
        // etcd: a value compare on a missing key fails.
        const holds = state === input.from;
        if (output === null) return holds ? input.to : state;
        if (!('succeeded' in output) || output.succeeded !== holds) return IMPOSSIBLE;
        return holds ? input.to : state;
      }
    }
  },
  hash: (state) => (state === null ? 0x5bd1e995 : hashString(state)),
  equal: (a, b) => a === b,
  partition: (input) => input.key,
  readOnly: (input, output) =>
    input.f === 'read' || (input.f === 'cas' && output !== null && 'succeeded' in output && !output.succeeded),
  describeOp(input, output) {
    const result =
      output === null
        ? '?'
        : 'value' in output
          ? show(output.value)
          : 'deleted' in output
            ? `deleted ${output.deleted}`
            : 'succeeded' in output
              ? String(output.succeeded)
              : 'ok';
    switch (input.f) {
      case 'read':
        return `read → ${result}`;
      case 'write':
        return `write ${input.value}${output === null ? ' ?' : ''}`;
      case 'delete':
        return `delete → ${result}`;
      case 'cas':
        return `cas ${input.from}→${input.to} → ${result}`;
    }
  },
  describeState: (state) => show(state),
};

function show(value: string | null): string {
  return value === null ? 'nil' : value;
}

// ---- bank ----

export type BankInput =
  | { f: 'read' }
  /** Moves `amount` from `from` to `to` if both balances still are `expect` (a guarded txn). */
  | { f: 'transfer'; from: number; to: number; amount: number; expect: [number, number] };

/** read: every balance at one revision; transfer: applied (a failed guard is not an op). */
export type BankOutput = { balances: number[] } | Record<string, never>;

/** The bank model for `accounts` accounts, each starting at `initial`. One partition (txns span keys). */
export function bankModel(accounts: number, initial: number): Model<number[], BankInput, BankOutput> {
  assert(Number.isSafeInteger(accounts) && accounts > 1, 'a bank needs at least two accounts');
  return {
    name: 'bank',
    init: () => new Array<number>(accounts).fill(initial),
    step(state, input, output) {
      if (input.f === 'read') {
        if (output === null) return state;
        if (!('balances' in output) || output.balances.length !== state.length) return IMPOSSIBLE;
        return output.balances.every((b, i) => b === state[i]) ? state : IMPOSSIBLE;
      }
      const holds = state[input.from] === input.expect[0] && state[input.to] === input.expect[1];
      if (!holds) return output === null ? state : IMPOSSIBLE;
      const next = state.slice();
      next[input.from] -= input.amount;
      next[input.to] += input.amount;
      return next;
    },
    hash: (state) => {
      let hash = 0x811c9dc5;
      for (const balance of state) hash = Math.imul(hash ^ balance, 0x01000193);
      return hash >>> 0;
    },
    equal: (a, b) => a.length === b.length && a.every((v, i) => v === b[i]),
    partition: () => 'bank',
    readOnly: (input) => input.f === 'read',
    describeOp(input, output) {
      if (input.f === 'read') return `read → ${output !== null && 'balances' in output ? `[${output.balances.join(' ')}]` : '?'}`;
      const [from, to] = input.expect;
      return `transfer ${input.amount} a${input.from}(${from})→a${input.to}(${to})${output === null ? ' ?' : ''}`;
    },
    describeState: (state) => `[${state.join(' ')}] total ${state.reduce((a, b) => a + b, 0)}`,
  };
}

// ---- append-only list ----

export type ListInput =
  | { f: 'read'; key: string }
  /** Appends `element` if the list still is `prior` (etcd: txn compare on the key's mod revision). */
  | { f: 'append'; key: string; element: string; prior: string[] };

export type ListOutput = { list: string[] } | Record<string, never>;

/** The list as its elements joined by ',' (elements never contain one): cheap to hash and compare. */
export type ListState = string;

export function joinList(list: readonly string[]): ListState {
  return list.join(',');
}

export const listModel: Model<ListState, ListInput, ListOutput> = {
  name: 'list',
  init: () => '',
  step(state, input, output) {
    if (input.f === 'read') {
      if (output === null) return state;
      return 'list' in output && joinList(output.list) === state ? state : IMPOSSIBLE;
    }
    const holds = joinList(input.prior) === state;
    if (!holds) return output === null ? state : IMPOSSIBLE;
    return state === '' ? input.element : `${state},${input.element}`;
  },
  hash: (state) => hashString(state),
  equal: (a, b) => a === b,
  partition: (input) => input.key,
  readOnly: (input) => input.f === 'read',
  describeOp(input, output) {
    if (input.f === 'read') return `read → ${output !== null && 'list' in output ? `[${output.list.join(' ')}]` : '?'}`;
    return `append ${input.element} after [${input.prior.join(' ')}]${output === null ? ' ?' : ''}`;
  },
  describeState: (state) => `[${state.split(',').join(' ')}]`,
};
