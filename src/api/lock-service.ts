// The v3lockpb.Lock and v3electionpb.Election services (etcd's v3lock and v3election): decode,
// call the backend, which does the work, and encode with the cluster header.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { AuthGate } from './auth-gate.ts';
import type { ElectionBackend, HeaderInfo, LeaderKey, LockBackend } from './backend.ts';
import { encodeHeader, parseInt64 } from './codec.ts';
import { ApiErrors } from './errors.ts';
import { drained, endWithStatus, SERVER_STOPPED, unaryHandler, waitingUnaryHandler } from './handlers.ts';
import type { OpenStreams } from './handlers.ts';
import type { Received } from './protos.ts';
import { toStatus } from './status.ts';
import type {
  WireCampaignRequest,
  WireKeyValue,
  WireLeaderKey,
  WireLeaderRequest,
  WireLockRequest,
  WireProclaimRequest,
  WireResignRequest,
  WireResponseHeader,
  WireUnlockRequest,
} from './wire.ts';

interface ServiceOptions<Backend> {
  backend: Backend;
  headerInfo: () => HeaderInfo;
  logger: Logger;
  /** Its static policy (LOCK_POLICY, ELECTION_POLICY) stamps each call; the stamp goes to the backend. */
  gate?: AuthGate;
}

const own = (bytes: Buffer) => new Uint8Array(bytes);

export function lockServiceHandlers(options: ServiceOptions<LockBackend>): grpc.UntypedServiceImplementation {
  const { backend, headerInfo, logger } = options;
  const header = (revision: number): WireResponseHeader => encodeHeader(revision, headerInfo());
  const stampOf = (request: object) => options.gate?.stampOf(request);
  return {
    Lock: waitingUnaryHandler('Lock', logger, async (request: Received<WireLockRequest>, signal) => {
      const { message } = request;
      const result = await backend.lock(
        { name: own(message.name), lease: parseInt64(message.lease, 'lease') },
        signal,
        stampOf(request),
      );
      return { header: header(result.header.revision), key: result.key };
    }),
    Unlock: unaryHandler('Unlock', logger, async (request: Received<WireUnlockRequest>) => {
      const result = await backend.unlock({ key: own(request.message.key) }, stampOf(request));
      return { header: header(result.header.revision) };
    }),
  };
}

/** etcd's v3election answers a Proclaim or Resign without a leader key with ErrMissingLeaderKey. */
function decodeLeaderKey(wire: WireLeaderKey | null): LeaderKey {
  if (wire === null) throw ApiErrors.missingLeaderKey();
  return {
    name: own(wire.name),
    key: own(wire.key),
    rev: parseInt64(wire.rev, 'rev'),
    lease: parseInt64(wire.lease, 'lease'),
  };
}

export function electionServiceHandlers(
  options: ServiceOptions<ElectionBackend> & { streams: OpenStreams },
): grpc.UntypedServiceImplementation {
  const { backend, headerInfo, logger } = options;
  const header = (revision: number): WireResponseHeader => encodeHeader(revision, headerInfo());
  const stampOf = (request: object) => options.gate?.stampOf(request);
  return {
    Campaign: waitingUnaryHandler(
      'Campaign',
      logger,
      async (request: Received<WireCampaignRequest>, signal) => {
        const { message } = request;
        const req = {
          name: own(message.name),
          lease: parseInt64(message.lease, 'lease'),
          value: own(message.value),
        };
        const result = await backend.campaign(req, signal, stampOf(request));
        return { header: header(result.header.revision), leader: result.leader };
      },
    ),
    Proclaim: unaryHandler('Proclaim', logger, async (request: Received<WireProclaimRequest>) => {
      const result = await backend.proclaim(
        { leader: decodeLeaderKey(request.message.leader), value: own(request.message.value) },
        stampOf(request),
      );
      return { header: header(result.header.revision) };
    }),
    Leader: unaryHandler('Leader', logger, async (request: Received<WireLeaderRequest>) => {
      const result = await backend.leader({ name: own(request.message.name) }, stampOf(request));
      return { header: header(result.header.revision), kv: result.kv };
    }),
    Resign: unaryHandler('Resign', logger, async (request: Received<WireResignRequest>) => {
      const result = await backend.resign({ leader: decodeLeaderKey(request.message.leader) }, stampOf(request));
      return { header: header(result.header.revision) };
    }),
    Observe: (
      call: grpc.ServerWritableStream<
        Received<WireLeaderRequest>,
        { header: WireResponseHeader; kv: WireKeyValue }
      >,
    ) => {
      void observe(call, options, header);
    },
  };
}

/** Streams the leader's key-value until the client leaves or the backend ends; one response in flight past grpc-js's buffer. */
async function observe(
  call: grpc.ServerWritableStream<
    Received<WireLeaderRequest>,
    { header: WireResponseHeader; kv: WireKeyValue }
  >,
  options: ServiceOptions<ElectionBackend> & { streams: OpenStreams },
  header: (revision: number) => WireResponseHeader,
): Promise<void> {
  const controller = new AbortController();
  const unregister = options.streams.add(() => {
    controller.abort();
    endWithStatus(call, SERVER_STOPPED);
  });
  call.on('cancelled', () => controller.abort());
  try {
    for await (const leader of options.backend.observe(
      { name: own(call.request.message.name) },
      controller.signal,
    )) {
      if (controller.signal.aborted) break;
      if (!call.write({ header: header(leader.header.revision), kv: leader.kv })) await drained(call);
      if (controller.signal.aborted) break;
    }
    // etcd ends Observe with OK when the election's observer channel closes.
    if (!controller.signal.aborted) call.end();
  } catch (error) {
    if (!controller.signal.aborted) endWithStatus(call, toStatus(error, 'Observe', options.logger));
  } finally {
    controller.abort();
    unregister();
  }
}
