// Calls every RPC of every etcd v3 service in proto/ once, with a harmless request, and reports
// whether the server implements it (anything but UNIMPLEMENTED). Used by rpc-matrix.test.ts to keep
// docs/COMPATIBILITY.md honest; run it by hand against any endpoint:
//   npx tsx test/compat/rpc-probe.ts 127.0.0.1:2379
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { etcdDefinition as definition } from '../support/etcd-grpc.ts';

/** Streams that stay open without a first message are implemented (an unknown method fails at once). */
const STREAM_WAIT_MS = 1_500;
const UNARY_DEADLINE_MS = 10_000;
const UNIMPLEMENTED = 12;

const key = Buffer.from('rpc-probe');
const leader = { name: key, key, rev: 1, lease: 1 };

/** Requests that cannot change anything that matters (unknown IDs, invalid URLs, reads). */
const REQUESTS: Record<string, object> = {
  'etcdserverpb.KV/Range': { key },
  'etcdserverpb.KV/RangeStream': { key },
  'etcdserverpb.KV/Put': { key, value: Buffer.from('1') },
  'etcdserverpb.KV/DeleteRange': { key },
  'etcdserverpb.KV/Compact': { revision: 1 },
  'etcdserverpb.Watch/Watch': { createRequest: { key } },
  'etcdserverpb.Lease/LeaseGrant': { TTL: 60 },
  'etcdserverpb.Lease/LeaseRevoke': { ID: 1 },
  'etcdserverpb.Lease/LeaseKeepAlive': { ID: 1 },
  'etcdserverpb.Lease/LeaseTimeToLive': { ID: 1 },
  'etcdserverpb.Cluster/MemberAdd': { peerURLs: ['not a url'] },
  'etcdserverpb.Cluster/MemberRemove': { ID: '1' },
  'etcdserverpb.Cluster/MemberUpdate': { ID: '1', peerURLs: ['http://127.0.0.1:1'] },
  'etcdserverpb.Cluster/MemberPromote': { ID: '1' },
  'etcdserverpb.Maintenance/Alarm': { action: 'GET' },
  'etcdserverpb.Maintenance/MoveLeader': { targetID: '1' },
  'v3lockpb.Lock/Lock': { name: key, lease: 1 },
  'v3lockpb.Lock/Unlock': { key },
  'v3electionpb.Election/Campaign': { name: key, lease: 1, value: key },
  'v3electionpb.Election/Proclaim': { leader, value: key },
  'v3electionpb.Election/Leader': { name: key },
  'v3electionpb.Election/Observe': { name: key },
  'v3electionpb.Election/Resign': { leader },
};

export interface RpcMethod {
  /** `package.Service/Method`, as in the gRPC path. */
  name: string;
  requestStream: boolean;
  responseStream: boolean;
}

/** Every RPC the proto files define, in file order. */
export function allRpcs(): RpcMethod[] {
  const out: RpcMethod[] = [];
  for (const value of Object.values(definition)) {
    if ('format' in value) continue; // a message or enum type, not a service
    for (const method of Object.values(value as Record<string, protoLoader.MethodDefinition<object, object>>)) {
      out.push({ name: method.path.slice(1), requestStream: method.requestStream, responseStream: method.responseStream });
    }
  }
  return out;
}

export interface ProbeResult {
  implemented: boolean;
  /** What came back: OK, a status code name with its details, or "stream open". */
  answer: string;
}

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

function methodDefinition(rpc: RpcMethod): protoLoader.MethodDefinition<object, object> {
  const [service, method] = rpc.name.split('/');
  return (definition[service] as Record<string, protoLoader.MethodDefinition<object, object>>)[method];
}

function fromError(error: grpc.ServiceError): ProbeResult {
  return { implemented: error.code !== UNIMPLEMENTED, answer: `${CODE_NAMES[error.code] ?? error.code} ${error.details}`.trim() };
}

/** Calls one RPC with its harmless request. */
export function probe(address: string, rpc: RpcMethod): Promise<ProbeResult> {
  const def = methodDefinition(rpc);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const request = REQUESTS[rpc.name] ?? {};
  const path = `/${rpc.name}`;
  const deadline = Date.now() + UNARY_DEADLINE_MS;
  return new Promise<ProbeResult>((resolve) => {
    if (!rpc.requestStream && !rpc.responseStream) {
      client.makeUnaryRequest(path, def.requestSerialize, def.responseDeserialize, request, { deadline }, (error) =>
        resolve(error ? fromError(error) : { implemented: true, answer: 'OK' }),
      );
      return;
    }
    const call = rpc.requestStream
      ? client.makeBidiStreamRequest(path, def.requestSerialize, def.responseDeserialize, { deadline })
      : client.makeServerStreamRequest(path, def.requestSerialize, def.responseDeserialize, request, { deadline });
    let done = false;
    const finish = (result: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
      call.cancel();
    };
    const timer = setTimeout(() => finish({ implemented: true, answer: 'stream open' }), STREAM_WAIT_MS);
    call.on('data', () => finish({ implemented: true, answer: 'OK (first message)' }));
    call.on('error', (error: grpc.ServiceError) => finish(fromError(error)));
    call.on('end', () => finish({ implemented: true, answer: 'OK (stream ended)' }));
    if (rpc.requestStream) (call as grpc.ClientDuplexStream<object, object>).write(request);
  }).finally(() => client.close());
}

/** Probes every RPC, one after another. */
export async function probeAll(address: string): Promise<Map<string, ProbeResult>> {
  const results = new Map<string, ProbeResult>();
  for (const rpc of allRpcs()) results.set(rpc.name, await probe(address, rpc));
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const address = process.argv[2] ?? '127.0.0.1:2379';
  for (const [name, result] of await probeAll(address)) {
    console.log(`${result.implemented ? 'yes' : 'NO '}  ${name.padEnd(44)} ${result.answer}`);
  }
}
