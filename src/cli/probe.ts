// Readiness probe: a linearizable etcd Range over plain gRPC. It succeeds only when the node has a
// leader and has applied up to the leader's commit index, so "ready" means "serving".
// Over TLS (with a client certificate for mutual TLS) when given the files.
import { readFileSync } from 'node:fs';
import { credentials, Client } from '@grpc/grpc-js';
import type { ChannelCredentials } from '@grpc/grpc-js';

/** TLS for the probe: the CA that signed the server's certificate, and a client certificate for mutual TLS. */
export interface ProbeTls {
  caFile: string;
  certFile?: string;
  keyFile?: string;
  /**
   * Name to check the server's certificate against instead of the endpoint's host (it is also the
   * TLS SNI name). Set it for IP endpoints to avoid Node's warning about an IP address as SNI.
   */
  serverName?: string;
}

function channelCredentials(tls: ProbeTls | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  const read = (path: string | undefined) => (path === undefined ? null : readFileSync(path));
  return credentials.createSsl(readFileSync(tls.caFile), read(tls.keyFile), read(tls.certFile));
}

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
export async function probeEndpoint(endpoint: string, timeoutMs: number, tls?: ProbeTls): Promise<void> {
  const options = tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {};
  const client = new Client(endpoint, channelCredentials(tls), options);
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
