// Field-by-field comparison of two clusters' answers to the same op. Responses are first made
// comparable (canonical JSON): cluster/member IDs and raft terms dropped from headers, the
// candidate's lease IDs mapped to the reference's, lease listings sorted, TTL countdowns allowed
// ±1 s. What is left must be equal, or be explained by a documented divergence (DIVERGENCES,
// each named in docs/COMPATIBILITY.md); anything else is a mismatch with a readable diff.
import { createHash } from 'node:crypto';
import type { Op, Req } from './ops.ts';
import type { WatchCreateInfo, WatchEntry } from './run.ts';

export type Outcome = { ok: true; value: unknown } | { ok: false; code: number; details: string };

/** What comparison needs to know about a cluster. */
export interface SideView {
  readonly name: string;
  /** This cluster's lease ID as the reference's ID for the same slot. */
  mapLease(id: string): string;
  readonly sessions: readonly { readonly logs: Map<number, WatchEntry[]> }[];
}

export interface Mismatch {
  index: number;
  op: Op;
  /** The request as sent to the reference (canonical JSON), or null for watch checks. */
  request: unknown;
  expected: unknown;
  actual: unknown;
  /** The differing fields, `path: reference vs candidate`. */
  differences: string[];
}

export interface Comparison {
  mismatches: Mismatch[];
  /** Names of the documented divergences that explained a difference. */
  divergences: string[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const LONG_BYTES = 64;
/** Go's sort.Sort is an insertion sort (stable) up to 12 elements and pdqsort (unstable) beyond. */
const GO_STABLE_SORT_MAX = 12;

/** Bytes as a readable string: printable ASCII as is, else hex; long values by length and digest. */
export function renderBytes(bytes: Buffer): string {
  if (bytes.length > LONG_BYTES) {
    const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
    return `<${bytes.length} bytes ${digest}>`;
  }
  if (bytes.every((b) => b >= 0x20 && b < 0x7f)) return bytes.toString('latin1');
  return `hex:${bytes.toString('hex')}`;
}

/** Canonical JSON of a decoded message from `side`. */
export function canonical(value: unknown, side: SideView | null, field = ''): Json {
  if (Buffer.isBuffer(value)) return renderBytes(value);
  if (Array.isArray(value)) return value.map((item) => canonical(item, side, field));
  if (typeof value === 'object' && value !== null) {
    const out: { [key: string]: Json } = {};
    for (const [key, item] of Object.entries(value)) {
      if (field === 'header' && key !== 'revision') continue;
      out[key] = canonical(item, side, key);
    }
    return out;
  }
  if ((field === 'lease' || field === 'ID') && side !== null && (typeof value === 'string' || typeof value === 'number')) {
    return side.mapLease(String(value));
  }
  if (value === undefined) return null;
  return value as Json;
}

function outcomeJson(outcome: Outcome, side: SideView | null): Json {
  if (!outcome.ok) return { error: { code: outcome.code, details: outcome.details } };
  return canonical(outcome.value, side);
}

/** The differing paths between two JSON values (at most `limit`). */
export function diffJson(a: Json, b: Json, path = '', out: string[] = [], limit = 12): string[] {
  if (out.length >= limit) return out;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) out.push(`${path}.length: ${a.length} vs ${b.length}`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) diffJson(a[i], b[i], `${path}[${i}]`, out, limit);
    return out;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      diffJson(a[key] ?? null, b[key] ?? null, path === '' ? key : `${path}.${key}`, out, limit);
    }
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${path || '(value)'}: ${short(a)} vs ${short(b)}`);
  return out;
}

function isObject(value: Json): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function short(value: Json): string {
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function equal(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---- tolerances that always apply (timing and random order, not behaviour) ----

/**
 * TTL countdowns measured at slightly different moments: within 1 s counts as equal. Tessera
 * rounds the remaining time up where etcd truncates it (docs/COMPATIBILITY.md, known differences),
 * so its countdown may read up to 2 s above etcd's.
 */
function alignTtl(expected: Json, actual: Json): Json {
  if (!isObject(expected) || !isObject(actual)) return actual;
  const e = Number(expected.TTL);
  const a = Number(actual.TTL);
  if (typeof expected.TTL === 'string' && Number.isFinite(a) && e > 0 && a > 0 && a - e >= -1 && a - e <= 2) {
    return { ...actual, TTL: expected.TTL };
  }
  return actual;
}

/** etcd lists leases, and a lease's keys, in Go map order (random); Tessera in ID and key order. */
function sortLeases(value: Json): Json {
  if (!isObject(value)) return value;
  const byText = (x: Json, y: Json) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1);
  if (Array.isArray(value.leases)) return { ...value, leases: [...value.leases].sort(byText) };
  if (Array.isArray(value.keys) && 'grantedTTL' in value) return { ...value, keys: [...value.keys].sort(byText) };
  return value;
}

// ---- documented divergences: normalizers that make an explained difference disappear ----

interface Divergence {
  /** As named in docs/COMPATIBILITY.md. */
  name: string;
  /** Rewrites both answers so that the documented difference no longer shows. */
  normalize(op: Op, request: Req | null, expected: Json, actual: Json): [Json, Json];
}

const SORT_FIELDS: Record<string, string> = { VERSION: 'version', CREATE: 'createRevision', MOD: 'modRevision', VALUE: 'value' };

/**
 * Equal sort values beyond 12 results: etcd's order among them is Go's unstable sort; Tessera keeps
 * them in key order. Within each tie group, order by key; a tie group cut by `limit` keeps only its size.
 */
function normalizeTies(request: Req, response: Json): Json {
  if (!isObject(response) || !Array.isArray(response.kvs)) return response;
  const field = SORT_FIELDS[String(request.sortTarget ?? 'KEY')];
  if (field === undefined || Number(response.count) <= GO_STABLE_SORT_MAX) return response;
  const groups: Json[][] = [];
  for (const kv of response.kvs) {
    const last = groups[groups.length - 1];
    if (last !== undefined && equal((last[0] as { [k: string]: Json })[field], (kv as { [k: string]: Json })[field])) last.push(kv);
    else groups.push([kv]);
  }
  const kvs: Json[] = [];
  groups.forEach((group, i) => {
    if (response.more === true && i === groups.length - 1) {
      kvs.push({ tieGroupCutByLimit: (group[0] as { [k: string]: Json })[field], size: group.length });
    } else {
      kvs.push(...[...group].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1)));
    }
  });
  return { ...response, kvs };
}

/** Applies `normalize` to every range response of a txn response, following the branch that ran. */
function forEachRange(request: Req, response: Json, normalize: (req: Req, resp: Json) => Json): Json {
  if (!isObject(response) || !Array.isArray(response.responses)) return response;
  const ops = (response.succeeded === true ? request.success : request.failure) as Req[] | undefined;
  if (ops === undefined) return response;
  const responses = response.responses.map((item, i) => {
    const op = ops[i];
    if (!isObject(item) || op === undefined) return item;
    if (op.requestRange !== undefined && item.responseRange !== undefined) {
      return { ...item, responseRange: normalize(op.requestRange as Req, item.responseRange) };
    }
    if (op.requestTxn !== undefined && item.responseTxn !== undefined) {
      return { ...item, responseTxn: forEachRange(op.requestTxn as Req, item.responseTxn, normalize) };
    }
    return item;
  });
  return { ...response, responses };
}

const DIVERGENCES: Divergence[] = [
  {
    name: 'unstable-sort-ties',
    normalize(op, request, expected, actual) {
      if (request === null) return [expected, actual];
      const apply = (value: Json) =>
        op.kind === 'range' ? normalizeTies(request, value) : op.kind === 'txn' ? forEachRange(request, value, normalizeTies) : value;
      return [apply(expected), apply(actual)];
    },
  },
];

function explain(op: Op, request: Req | null, expected: Json, actual: Json): { names: string[]; expected: Json; actual: Json } | null {
  for (const divergence of DIVERGENCES) {
    const [e, a] = divergence.normalize(op, request, expected, actual);
    if (equal(e, a)) return { names: [divergence.name], expected: e, actual: a };
  }
  let e = expected;
  let a = actual;
  for (const divergence of DIVERGENCES) [e, a] = divergence.normalize(op, request, e, a);
  if (equal(e, a)) return { names: DIVERGENCES.map((d) => d.name), expected: e, actual: a };
  return null;
}

/** Compares the answers of one op. */
export function compareOutcomes(index: number, op: Op, request: Req | null, expected: Outcome, actual: Outcome, candidate: SideView): Comparison {
  let e = sortLeases(outcomeJson(expected, null));
  let a = sortLeases(outcomeJson(actual, candidate));
  if (op.kind === 'leaseTimeToLive') a = alignTtl(e, a);
  if (op.kind === 'watchCreate') [e, a] = [withoutEvents(e), withoutEvents(a)];
  if (equal(e, a)) return { mismatches: [], divergences: [] };
  const explained = explain(op, request, e, a);
  if (explained !== null) return { mismatches: [], divergences: explained.names };
  const requestJson = request === null ? null : canonical(request, null);
  return { mismatches: [{ index, op, request: requestJson, expected: e, actual: a, differences: diffJson(e, a) }], divergences: [] };
}

function withoutEvents(value: Json): Json {
  if (!isObject(value)) return value;
  const { events: _events, ...rest } = value;
  return rest;
}

function entryJson(entry: WatchEntry, side: SideView | null): Json {
  if (entry.type === 'event') return canonical(entry.event, side);
  const r = entry.response as Record<string, unknown>;
  return canonical(
    { canceled: true, header: r.header, compactRevision: r.compactRevision, cancelReason: r.cancelReason },
    side,
  );
}

/** Compares every watcher's log since the last check, then empties the logs. */
export function compareWatchLogs(
  index: number,
  reference: SideView,
  candidate: SideView,
  watches: ReadonlyMap<number, WatchCreateInfo>,
  compactions: ReadonlySet<number>,
): Comparison {
  const mismatches: Mismatch[] = [];
  const divergences: string[] = [];
  const logsOf = (side: SideView) => {
    const all = new Map<number, WatchEntry[]>();
    for (const session of side.sessions) {
      for (const [create, log] of session.logs) {
        all.set(create, [...log]);
        log.length = 0;
      }
    }
    return all;
  };
  const expectedLogs = logsOf(reference);
  const actualLogs = logsOf(candidate);
  const creates = [...new Set([...expectedLogs.keys(), ...actualLogs.keys()])].sort((x, y) => x - y);
  for (const create of creates) {
    const e: Json[] = (expectedLogs.get(create) ?? []).map((entry) => entryJson(entry, null));
    let a: Json[] = alignCompactRevision(e, (actualLogs.get(create) ?? []).map((entry) => entryJson(entry, candidate)));
    if (equal(e, a)) continue;
    for (const explain of [explainCancelReason, explainCompactedTombstones]) {
      const reason = explain(e, a, watches.get(create), compactions);
      if (reason === null) continue;
      divergences.push(reason.name);
      a = reason.actual;
    }
    if (equal(e, a)) continue;
    mismatches.push({
      index,
      op: { kind: 'watchCheck', note: `log of the watcher created by op #${create}` },
      request: null,
      expected: e,
      actual: a,
      differences: diffJson(e, a),
    });
  }
  return { mismatches, divergences };
}

/**
 * etcd cancels a watcher created below the compacted revision from its sync loop (every 100 ms),
 * with the compaction current then; Tessera at once, with the one current at creation. When both
 * cancel for compaction, a Tessera compact_revision no later than etcd's counts as equal (timing).
 */
function alignCompactRevision(expected: Json[], actual: Json[]): Json[] {
  const last = actual[actual.length - 1];
  const reference = expected[expected.length - 1];
  if (!isObject(last) || !isObject(reference) || last.canceled !== true || reference.canceled !== true) return actual;
  const [e, a] = [Number(reference.compactRevision), Number(last.compactRevision)];
  if (e <= 0 || a <= 0 || a > e) return actual;
  return [...actual.slice(0, -1), { ...last, compactRevision: reference.compactRevision }];
}

type WatchExplanation = (
  expected: Json[],
  actual: Json[],
  watch: WatchCreateInfo | undefined,
  compactions: ReadonlySet<number>,
) => { name: string; actual: Json[] } | null;

/** Documented: Tessera adds a cancel_reason when compaction cancels a watcher. */
const explainCancelReason: WatchExplanation = (expected, actual) => {
  const last = actual[actual.length - 1];
  const reference = expected[expected.length - 1];
  if (!isObject(last) || !isObject(reference) || last.canceled !== true || reference.canceled !== true) return null;
  if (reference.cancelReason !== '' || last.cancelReason === '' || Number(last.compactRevision) === 0) return null;
  return { name: 'watch-compacted-cancel-reason', actual: [...actual.slice(0, -1), { ...last, cancelReason: '' }] };
};

/**
 * Documented (an etcd 3.4 bug): compacting at revision C removes the tombstones written at C, so a
 * watch from exactly C misses those deletes once the compaction has run; Tessera keeps them.
 */
const explainCompactedTombstones: WatchExplanation = (expected, actual, watch, compactions) => {
  if (watch === undefined || !compactions.has(watch.startRevision)) return null;
  const at = String(watch.startRevision);
  const isMissingDelete = (entry: Json) =>
    isObject(entry) && entry.type === 'DELETE' && isObject(entry.kv) && entry.kv.modRevision === at && !expected.some((e) => equal(e, entry));
  const kept = actual.filter((entry) => !isMissingDelete(entry));
  return kept.length === actual.length ? null : { name: 'watch-compacted-revision-tombstones', actual: kept };
};

function describeOp(op: Op): string {
  const where = 'member' in op ? ` on member ${op.member}` : 'stream' in op ? ` on watch stream ${op.stream}` : '';
  const note = op.note === undefined ? '' : ` (${op.note})`;
  return `${op.kind}${note}${where}`;
}

function clip(value: unknown, max = 1500): string {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}... (${text.length} chars)` : text;
}

/** A readable report of one mismatch. */
export function formatMismatch(m: Mismatch): string {
  const lines = [`#${m.index} ${describeOp(m.op)}`];
  if (m.request !== null) lines.push(`  request: ${clip(m.request)}`);
  if (m.op.kind === 'watchCancel') lines.push(`  cancels the watcher created by op #${m.op.watch}`);
  lines.push(`  etcd:    ${clip(m.expected)}`);
  lines.push(`  tessera: ${clip(m.actual)}`);
  lines.push(`  differs: ${m.differences.join('\n           ')}`);
  return lines.join('\n');
}
