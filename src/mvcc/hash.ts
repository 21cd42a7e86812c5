// hashKV: a CRC-32 over the key versions a store holds up to a revision, so replicas (and a store
// and its restored snapshot) can be compared for divergence, like etcd's HashKV corruption check.

import { crc32 } from 'node:zlib';
import { assert } from '../util/index.ts';
import type { Keyspace } from './keyspace.ts';

const DOMAIN = new TextEncoder().encode('tessera/mvcc/hashkv/v1');

/** Every version with modRevision <= rev, in key order then revision order, fields fixed-width. */
export function hashKeyspace(ks: Keyspace, rev: number): number {
  assert(rev >= ks.compactedRevision && rev <= ks.currentRevision, () => `hash revision ${rev} out of range`);
  const header = new DataView(new ArrayBuffer(40));
  const headerBytes = new Uint8Array(header.buffer);
  let crc = crc32(DOMAIN);
  for (const [, entry] of ks.entries()) {
    for (let i = 0; i < entry.versionCount; i++) {
      const kv = entry.kvAt(i);
      if (kv.modRevision > rev) break;
      header.setUint32(0, kv.key.length);
      header.setFloat64(4, kv.modRevision);
      header.setFloat64(12, kv.createRevision);
      header.setFloat64(20, kv.version);
      header.setFloat64(28, kv.lease);
      header.setUint32(36, kv.value.length);
      crc = crc32(headerBytes, crc);
      crc = crc32(kv.key, crc);
      if (kv.value.length > 0) crc = crc32(kv.value, crc);
    }
  }
  return crc >>> 0;
}
