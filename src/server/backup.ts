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
  const { data, ...position } = backup;
  return Buffer.concat(backupChunks(position, [data]).chunks);
}

/**
 * encodeBackup's bytes as a list of chunks whose tail is `data` itself, uncopied: a backup of a
 * large state is streamed from the image's pieces without joining them. The payload is the msgpack
 * map {index, term, confState, data} written element by element, `data` as one bin32.
 */
export function backupChunks(position: Omit<Backup, 'data'>, data: readonly Uint8Array[]): { size: number; chunks: Uint8Array[] } {
  const dataBytes = data.reduce((n, piece) => n + piece.length, 0);
  const fields = [packr.pack('index'), packr.pack(position.index), packr.pack('term'), packr.pack(position.term)];
  fields.push(packr.pack('confState'), packr.pack(position.confState), packr.pack('data'));
  const binHeader = Buffer.alloc(5);
  binHeader[0] = 0xc6; // bin 32
  binHeader.writeUInt32BE(dataBytes, 1);
  const mapHeader = Buffer.from([0x84]); // fixmap of 4 entries
  const payloadBytes = mapHeader.length + fields.reduce((n, f) => n + f.length, 0) + binHeader.length + dataBytes;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(payloadBytes);
  const head = Buffer.concat([magic, length, mapHeader, ...fields, binHeader]);
  const chunks = [head, ...data.filter((piece) => piece.length > 0)];
  return { size: head.length + dataBytes, chunks };
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
