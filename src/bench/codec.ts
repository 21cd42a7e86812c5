// The two ways the load generator can encode KV requests, kept side by side so their client CPU can
// be measured (`--codec raw|proto`): hand-rolled protobuf that skips responses it does not need, or
// proto-loader/protobufjs objects as a typical Node etcd client does (encode and full decode).
import type { CodecName } from './config.ts';
import type { CasResult } from './wire.ts';
import { decodeCasTxn, encodeCasTxn, encodePut, encodePutTxn, encodeRange } from './wire.ts';

export interface KvCodec {
  put(key: Buffer, value: Buffer): Buffer;
  range(key: Buffer, serializable: boolean): Buffer;
  casTxn(key: Buffer, expectedModRevision: number, value: Buffer): Buffer;
  /** A Txn of puts with no compares (the load workload). */
  putTxn(keys: readonly Buffer[], values: readonly Buffer[]): Buffer;
  /** Reads a Put or Range response (raw: not at all; proto: a full decode, as a real client does). */
  consume(kind: 'put' | 'range', response: Buffer): void;
  decodeCas(response: Buffer): CasResult;
}

const rawCodec: KvCodec = {
  put: encodePut,
  range: encodeRange,
  casTxn: encodeCasTxn,
  putTxn: encodePutTxn,
  consume: () => {},
  decodeCas: decodeCasTxn,
};

interface ProtoType {
  serialize(value: object): Buffer;
  deserialize(bytes: Buffer): Record<string, unknown>;
}

/** Loads etcd's protos with proto-loader (only when --codec proto asks for it). */
async function protoCodec(): Promise<KvCodec> {
  const protoLoader = await import('@grpc/proto-loader');
  const { ETCD_PROTO_FILES, PROTO_INCLUDE_DIR } = await import('../api/index.ts');
  const definition = protoLoader.loadSync([...ETCD_PROTO_FILES], {
    longs: String,
    enums: Number,
    bytes: Buffer,
    defaults: false,
    oneofs: true,
    includeDirs: [PROTO_INCLUDE_DIR],
  });
  const kv = definition['etcdserverpb.KV'];
  if (kv === undefined || 'format' in kv) throw new Error('etcdserverpb.KV missing from the etcd protos');
  const method = (name: string) => {
    const m = kv[name];
    return {
      request: { serialize: m.requestSerialize, deserialize: m.requestDeserialize } as ProtoType,
      response: { serialize: m.responseSerialize, deserialize: m.responseDeserialize } as ProtoType,
    };
  };
  const put = method('Put');
  const range = method('Range');
  const txn = method('Txn');
  return {
    put: (key, value) => put.request.serialize({ key, value }),
    range: (key, serializable) => range.request.serialize({ key, serializable }),
    casTxn: (key, expectedModRevision, value) =>
      txn.request.serialize({
        compare: [{ result: 'EQUAL', target: 'MOD', key, modRevision: String(expectedModRevision) }],
        success: [{ requestPut: { key, value } }],
        failure: [{ requestRange: { key } }],
      }),
    putTxn: (keys, values) => txn.request.serialize({ success: keys.map((key, i) => ({ requestPut: { key, value: values[i] } })) }),
    consume: (kind, response) => {
      (kind === 'put' ? put : range).response.deserialize(response);
    },
    decodeCas: (response) => {
      const decoded = txn.response.deserialize(response) as {
        header?: { revision?: string };
        succeeded?: boolean;
        responses?: { responseRange?: { kvs?: { modRevision?: string }[] } }[];
      };
      const succeeded = decoded.succeeded === true;
      const revision = succeeded
        ? decoded.header?.revision
        : decoded.responses?.[0]?.responseRange?.kvs?.[0]?.modRevision;
      return { succeeded, modRevision: Number(revision ?? 0) };
    },
  };
}

export async function loadCodec(name: CodecName): Promise<KvCodec> {
  return name === 'raw' ? rawCodec : protoCodec();
}
