// Byte encodings the simulator puts through Raft: writes (normal entry payloads), read contexts,
// and the state-machine image carried in snapshots.
import { assert } from '../util/index.ts';

const WRITE_TAG = 0x57; // 'W'
const READ_TAG = 0x52; // 'R'
const WRITE_HEADER_BYTES = 5;

/** A write's payload: tag, 32-bit id, then padding (exercises byte-based limits). */
export function encodeWrite(writeId: number, paddingBytes: number): Uint8Array {
  assert(
    Number.isInteger(writeId) && writeId >= 0 && writeId <= 0xffffffff,
    () => `write id ${writeId} out of range`,
  );
  const data = new Uint8Array(WRITE_HEADER_BYTES + paddingBytes);
  data[0] = WRITE_TAG;
  new DataView(data.buffer).setUint32(1, writeId);
  return data;
}

/** The write id in a normal entry's payload, or null for an empty (no-op) entry. */
export function decodeWrite(data: Uint8Array): number | null {
  if (data.length === 0) return null;
  assert(
    data.length >= WRITE_HEADER_BYTES && data[0] === WRITE_TAG,
    () => `normal entry with foreign payload (${data.length} bytes)`,
  );
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
}

export function encodeReadContext(readId: number): Uint8Array {
  const data = new Uint8Array(WRITE_HEADER_BYTES);
  data[0] = READ_TAG;
  new DataView(data.buffer).setUint32(1, readId);
  return data;
}

export function decodeReadContext(context: Uint8Array): number | null {
  if (context.length !== WRITE_HEADER_BYTES || context[0] !== READ_TAG) return null;
  return new DataView(context.buffer, context.byteOffset, context.byteLength).getUint32(1);
}

/** State-machine image for snapshots: the applied write ids as big-endian uint32s. */
export function encodeStateMachine(writes: readonly number[]): Uint8Array {
  const data = new Uint8Array(writes.length * 4);
  const view = new DataView(data.buffer);
  for (let i = 0; i < writes.length; i++) view.setUint32(i * 4, writes[i]);
  return data;
}

export function decodeStateMachine(data: Uint8Array): number[] {
  assert(data.length % 4 === 0, () => `state-machine image of ${data.length} bytes`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const writes = new Array<number>(data.length / 4);
  for (let i = 0; i < writes.length; i++) writes[i] = view.getUint32(i * 4);
  return writes;
}
