// Range execution with etcd 3.4's exact semantics (etcdserver/apply.go Range): count is every key
// in range at the revision (ignoring limit and the min/max filters), limit fetches one extra to
// set `more`, sorting and filters fetch everything first, keysOnly blanks values.

import { assert, unreachable } from '../util/index.ts';
import type { KeyValue, RangeRequest, RangeResponse, SortTarget } from './types.ts';
import { EMPTY_BYTES, compareBytes, toBounds } from './keys.ts';
import { visibleAt } from './keyspace.ts';
import type { Keyspace } from './keyspace.ts';

export function hasRevisionFilters(req: RangeRequest): boolean {
  return req.minModRevision !== 0 || req.maxModRevision !== 0 || req.minCreateRevision !== 0 || req.maxCreateRevision !== 0;
}

/**
 * Runs a validated range. `readRevision` is the revision the caller reads at when req.revision is
 * 0 (the store's current revision, or inside a write txn etcd's beginRev(+1)); it is also the
 * header revision, as in etcd (the header never reports the historical revision that was read).
 */
export function executeRange(ks: Keyspace, req: RangeRequest, readRevision: number): RangeResponse {
  const rev = req.revision > 0 ? req.revision : readRevision;
  assert(rev <= readRevision && rev >= ks.compactedRevision, () => `range revision ${rev} was not validated`);
  // etcd 3.4: fetch everything when sorting or filtering, else limit + 1 to learn `more`.
  const fetchAll = req.sortOrder !== 'none' || hasRevisionFilters(req);
  const fetchLimit = req.countOnly ? 0 : fetchAll || req.limit <= 0 ? Number.POSITIVE_INFINITY : req.limit + 1;
  let kvs: KeyValue[] = [];
  let count = 0;
  ks.forEach(toBounds(req.key, req.rangeEnd), (entry) => {
    const kv = visibleAt(entry, rev);
    if (kv === null) return;
    count += 1;
    if (kvs.length < fetchLimit) kvs.push(kv);
  });
  kvs = filterByRevisions(kvs, req);
  sortKvs(kvs, req);
  let more = false;
  if (req.limit > 0 && kvs.length > req.limit) {
    kvs.length = req.limit;
    more = true;
  }
  if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY_BYTES }));
  return { header: { revision: readRevision }, kvs, more, count };
}

function filterByRevisions(kvs: KeyValue[], req: RangeRequest): KeyValue[] {
  if (!hasRevisionFilters(req)) return kvs;
  return kvs.filter(
    (kv) =>
      (req.maxModRevision === 0 || kv.modRevision <= req.maxModRevision) &&
      (req.minModRevision === 0 || kv.modRevision >= req.minModRevision) &&
      (req.maxCreateRevision === 0 || kv.createRevision <= req.maxCreateRevision) &&
      (req.minCreateRevision === 0 || kv.createRevision >= req.minCreateRevision),
  );
}

/**
 * sortOrder none with a target other than key means ascend (etcd); none with key, and ascend by
 * key, keep the index's key order. The sort is stable, so ties stay in ascending key order in both
 * directions (what Go's insertion sort does for etcd's small results; Go's sort is unstable beyond).
 */
function sortKvs(kvs: KeyValue[], req: RangeRequest): void {
  const order = req.sortOrder === 'none' && req.sortTarget !== 'key' ? 'ascend' : req.sortOrder;
  if (order === 'none' || (order === 'ascend' && req.sortTarget === 'key')) return;
  if (req.sortTarget === 'key') {
    kvs.reverse(); // descend by key: keys are unique and already ascending
    return;
  }
  const compare = comparatorFor(req.sortTarget);
  if (order === 'ascend') kvs.sort(compare);
  else kvs.sort((a, b) => compare(b, a));
}

function comparatorFor(target: Exclude<SortTarget, 'key'>): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case 'version':
      return (a, b) => a.version - b.version;
    case 'create':
      return (a, b) => a.createRevision - b.createRevision;
    case 'mod':
      return (a, b) => a.modRevision - b.modRevision;
    case 'value':
      return (a, b) => compareBytes(a.value, b.value);
    default:
      return unreachable(target, 'sort target');
  }
}
