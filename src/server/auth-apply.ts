// Authorization checked again where a request takes effect (etcd's authApplierV3): a call is
// authorized against the receiving node's applied auth store, which may lag behind a revocation
// the leader already committed. The request carries its stamp (user, auth revision of the check);
// when the replica applying it (or serving the linearizable read) has a newer auth store, the
// request is checked again against that store, so every replica decides alike and a revoked
// permission is never honoured after its revocation is in the log.
import { ApiErrors, deleteRangeNeeds, putNeeds, txnNeeds } from '../api/index.ts';
import type { AuthNeed, AuthStamp } from '../api/index.ts';
import type { MvccStore } from '../mvcc/index.ts';
import { assert } from '../util/index.ts';
import type { AuthStore } from './auth-store.ts';
import type { Command } from './commands.ts';

/**
 * Throws unless the stamped request may still run: auth since disabled or nothing changed since
 * the check (the common case: one comparison) → allowed. Otherwise: the user's token was
 * invalidated after the check (password changed, a role taken, user deleted) → etcd's "revision
 * of auth store is old" (clients re-authenticate and retry); a need no longer granted →
 * "permission denied".
 */
export function recheckAuth(store: AuthStore, stamp: AuthStamp, needs: () => readonly AuthNeed[]): void {
  if (!store.enabled || store.revision === stamp.revision) return;
  const user = store.user(stamp.user);
  // A token is good only while the user's epoch is older than the check (auth.ts); a certificate has no epoch.
  if (stamp.cert !== true && (user === undefined || user.epoch >= stamp.revision)) throw ApiErrors.authOldRevision();
  for (const need of needs()) {
    if (!store.permits(stamp.user, need)) throw ApiErrors.permissionDenied();
  }
}

const ROOT: readonly AuthNeed[] = [{ kind: 'root' }];
const EMPTY = new Uint8Array(0);

/** What a stamped command needs now, as the API asked at arrival (auth-gate.ts). */
export function commandNeeds(cmd: Command, store: MvccStore): readonly AuthNeed[] {
  switch (cmd.op) {
    case 'put':
      return putNeeds(cmd.req);
    case 'deleteRange':
      return deleteRangeNeeds(cmd.req);
    case 'txn':
      return txnNeeds(cmd.req);
    case 'compact':
    case 'auth':
      return ROOT;
    case 'leaseRevoke':
      return leaseKeysNeeds(cmd.id, store);
    default:
      assert(false, () => `command ${cmd.op} carries no auth stamp`);
  }
}

/** WRITE on every key attached to the lease (an unknown lease needs nothing: the revoke fails anyway). */
function leaseKeysNeeds(id: number, store: MvccStore): AuthNeed[] {
  let keys: Uint8Array[];
  try {
    keys = store.leaseTimeToLive(id, true).keys;
  } catch {
    return [];
  }
  return keys.map((key) => ({ kind: 'write', key, rangeEnd: EMPTY }));
}

