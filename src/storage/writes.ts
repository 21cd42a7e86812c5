// One commit's writes as a list of (database, key, value) operations: recorded in the write-ahead
// log as one record, and later issued to LMDB (possibly together with other commits' writes).
import type { Database, Key } from 'lmdb';
import { pack, unpack } from 'msgpackr';
import { StorageCorruptionError } from './errors.ts';
import type { StorageDbs } from './dbs.ts';

/** The databases of dbs.ts, by number in the log. */
export const DB_LOG = 0;
export const DB_STATE = 1;
export const DB_CHUNKS = 2;
export const DB_META = 3;
type DbNumber = typeof DB_LOG | typeof DB_STATE | typeof DB_CHUNKS | typeof DB_META;

/** Operations in order; a `null` value removes the key. */
export class Writes {
  readonly dbs: DbNumber[] = [];
  readonly keys: unknown[] = [];
  readonly values: unknown[] = [];
  /** Rough size, for the bounds on what is kept in memory until LMDB has it. */
  bytes = 0;
  /** Holds snapshot chunks: too large for the log, written straight to LMDB. */
  hasChunks = false;
  /**
   * Records a snapshot whose pieces were written straight to LMDB (GroupHost.writeSnapshotPiece):
   * goes to LMDB too, in a transaction after theirs, never only to the log (a crash could then
   * replay the record without the pieces).
   */
  afterPieces = false;

  put(db: DbNumber, key: unknown, value: unknown, bytes: number): void {
    this.dbs.push(db);
    this.keys.push(key);
    this.values.push(value);
    this.bytes += bytes + 32;
    if (db === DB_CHUNKS) this.hasChunks = true;
  }

  encode(): Buffer {
    return pack([this.dbs, this.keys, this.values]);
  }

  static decode(payload: Uint8Array): Writes {
    const decoded: unknown = unpack(payload);
    const writes = new Writes();
    if (!Array.isArray(decoded) || decoded.length !== 3 || !decoded.every(Array.isArray)) {
      throw new StorageCorruptionError('write-ahead log: a record is not a list of writes');
    }
    const [dbs, keys, values] = decoded as [unknown[], unknown[], unknown[]];
    if (keys.length !== dbs.length || values.length !== dbs.length) throw new StorageCorruptionError('write-ahead log: a record has mismatched write lists');
    for (let i = 0; i < dbs.length; i++) {
      const db = dbs[i];
      if (db !== DB_LOG && db !== DB_STATE && db !== DB_CHUNKS && db !== DB_META) throw new StorageCorruptionError(`write-ahead log: unknown database ${String(db)}`);
      writes.put(db, keys[i], values[i], 0);
    }
    return writes;
  }

  /** Issues every operation to LMDB (they join the transaction of the current event turn); `track` sees each promise. */
  issue(dbs: StorageDbs, track: (write: Promise<boolean>) => void): void {
    this.forEach(dbs, (db, key, value) => track(value === null ? db.remove(key) : db.put(key, value)));
  }

  /** issue() inside a synchronous transaction (recovery). */
  issueSync(dbs: StorageDbs): void {
    this.forEach(dbs, (db, key, value) => (value === null ? db.removeSync(key) : db.putSync(key, value)));
  }

  private forEach(dbs: StorageDbs, visit: (db: Database<unknown, Key>, key: Key, value: unknown) => void): void {
    for (let i = 0; i < this.dbs.length; i++) visit(database(dbs, this.dbs[i]), this.keys[i] as Key, this.values[i]);
  }
}

/** The database numbered `db`, typed loosely: the keys and values were made for it when staged. */
function database(dbs: StorageDbs, db: DbNumber): Database<unknown, Key> {
  switch (db) {
    case DB_LOG:
      return dbs.log as unknown as Database<unknown, Key>;
    case DB_STATE:
      return dbs.state as unknown as Database<unknown, Key>;
    case DB_CHUNKS:
      return dbs.chunks as unknown as Database<unknown, Key>;
    case DB_META:
      return dbs.meta as unknown as Database<unknown, Key>;
  }
}
