// Readiness probe: a linearizable etcd Range over plain gRPC. It succeeds only when the node has a
// leader and has applied up to the leader's commit index, so "ready" means "serving".
import { credentials, Client } from '@grpc/grpc-js';

/** RangeRequest{key: "tessera/probe"} in protobuf wire format: field 1, length-delimited. */
const probeRequest = (() => {
  const key = Buffer.from('tessera/probe');
  return Buffer.concat([Buffer.from([0x0a, key.length]), key]);
})();

function rangeOnce(client: Client, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/etcdserverpb.KV/Range',
      (b: Buffer) => b,
      (b: Buffer) => b,
      probeRequest,
      { deadline: Date.now() + deadlineMs },
      (error) => (error ? reject(error) : resolve()),
    );
  });
}

/** Resolves once `endpoint` (host:port) answers a linearizable read; rejects after `timeoutMs`. */
export async function probeEndpoint(endpoint: string, timeoutMs: number): Promise<void> {
  const client = new Client(endpoint, credentials.createInsecure());
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  try {
    while (Date.now() < deadline) {
      try {
        await rangeOnce(client, 2_000);
        return;
      } catch (error) {
        lastError = error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    client.close();
  }
  throw new Error(`${endpoint} did not serve within ${timeoutMs} ms: ${(lastError as Error)?.message ?? 'no answer'}`);
}
