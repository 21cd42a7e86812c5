// The LMDB environment of one node and its named databases. Every group shares them; a group's
// keys start with its id, so each group is its own keyspace and one transaction spans them all.
import { open } from 'lmdb';
import type { Database, Key, RootDatabase } from 'lmdb';

/**
 * - `log`:    (group u64, index u64) → type u8, term u64, payload (codec.ts).
 * - `state`:  [group, record name] → msgpack record (hard state, conf state, log offset, snapshot metadata).
 * - `chunks`: [group, snapshot index, chunk number] → snapshot bytes, LZ4-compressed.
 * - `meta`:   name → msgpack bytes (node metadata: ids, members, ...).
 */
export interface StorageDbs {
  env: RootDatabase<unknown, Key>;
  log: Database<Buffer, Buffer>;
  state: Database<unknown, Key[]>;
  chunks: Database<Buffer, Key[]>;
  meta: Database<Buffer, string>;
}

export interface OpenDbsOptions {
  path: string;
  sync: boolean;
  mapSizeBytes?: number;
}

export function openDbs(options: OpenDbsOptions): StorageDbs {
  const env = open<unknown, Key>(options.path, {
    maxDbs: 8,
    // Classic LMDB durability: a commit returns (and its promise resolves) after fdatasync.
    // lmdb-js's overlappingSync would pipeline the fsync after the commit, but commits here are
    // awaited one at a time and it measured no faster on the development machine.
    // With sync off: no fsync at all (a process crash still loses nothing, a power loss may).
    noSync: !options.sync,
    overlappingSync: false,
    ...(options.mapSizeBytes !== undefined ? { mapSize: options.mapSizeBytes } : {}),
  });
  return {
    env,
    log: env.openDB<Buffer, Buffer>('log', { encoding: 'binary', keyEncoding: 'binary' }),
    state: env.openDB<unknown, Key[]>('state', { encoding: 'msgpack' }),
    chunks: env.openDB<Buffer, Key[]>('chunks', { encoding: 'binary', compression: true }),
    meta: env.openDB<Buffer, string>('meta', { encoding: 'binary' }),
  };
}
