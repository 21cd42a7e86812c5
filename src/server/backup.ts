// Backups: the byte stream `etcdctl snapshot save` receives from Maintenance.Snapshot, and the
// way back (`tessera snapshot restore`) into a fresh data directory.
import { Packr } from 'msgpackr';
import type { ConfState } from '../raft/index.ts';
import { EtcdError, GrpcCode } from '../util/index.ts';

const magic = Buffer.from('TESSERA-BACKUP-1');
const packr = new Packr({ useRecords: false });

export interface Backup {
  /** The Raft position the image is as of (its applied index and term). */
  index: number;
  term: number;
  confState: ConfState;
  /** Replica snapshot data (see encodeSnapshotData): the MVCC image and replicated extras. */
  data: Uint8Array;
}

/** magic, u32 payload length, msgpack payload: the format tells its own end, so trailing padding is ignored. */
export function encodeBackup(backup: Backup): Buffer {
  const payload = packr.pack(backup);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(payload.length);
  return Buffer.concat([magic, length, payload]);
}

export function decodeBackup(bytes: Uint8Array): Backup {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < magic.length + 4 || !buffer.subarray(0, magic.length).equals(magic)) {
    throw new EtcdError(GrpcCode.INVALID_ARGUMENT, 'not a Tessera backup (made by `etcdctl snapshot save` against Tessera)');
  }
  const length = buffer.readUInt32BE(magic.length);
  const start = magic.length + 4;
  if (start + length > buffer.length) throw new EtcdError(GrpcCode.DATA_LOSS, 'backup is truncated');
  const backup = packr.unpack(buffer.subarray(start, start + length)) as Backup;
  if (typeof backup.index !== 'number' || !(backup.data instanceof Uint8Array)) {
    throw new EtcdError(GrpcCode.DATA_LOSS, 'backup payload is malformed');
  }
  return backup;
}
