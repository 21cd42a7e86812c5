// The etcdserverpb.Maintenance service: member status, alarms, defragment, hashes, snapshot and
// leader transfer, mapped onto a MaintenanceBackend with etcd's response shapes (v3rpc/maintenance.go).
import { createHash } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { assert, EtcdError, GrpcCode, invalidArgument } from '../util/index.ts';
import type {
  AlarmMember,
  AlarmRequest,
  AlarmType,
  HeaderInfo,
  MaintenanceBackend,
  SnapshotStream,
  StatusResult,
} from './backend.ts';
import { encodeHeader, isUint64Decimal, parseInt64 } from './codec.ts';
import { drained, endWithStatus, SERVER_STOPPED, unaryHandler } from './handlers.ts';
import type { OpenStreams } from './handlers.ts';
import type { Received } from './protos.ts';
import { toStatus } from './status.ts';
import type {
  WireAlarmMember,
  WireAlarmRequest,
  WireAlarmResponse,
  WireHashKVRequest,
  WireHashKVResponse,
  WireHashResponse,
  WireMoveLeaderRequest,
  WireResponseHeader,
  WireSnapshotResponse,
  WireStatusResponse,
} from './wire.ts';

/** etcdserver.ErrNoLeader's text: etcd lists it in Status errors when the member knows no leader. */
const NO_LEADER_ERROR = 'etcdserver: no leader';
/** etcd's snapshotSendBufferSize: each SnapshotResponse carries at most this much of the blob. */
export const SNAPSHOT_MESSAGE_BYTES = 32 * 1024;
/** etcdctl snapshot save accepts only files of n*512 bytes plus the 32-byte checksum. */
export const SNAPSHOT_ALIGN_BYTES = 512;
const ALARM_ACTIONS: readonly AlarmRequest['action'][] = ['get', 'activate', 'deactivate'];
const ALARM_TYPES: readonly AlarmType[] = ['none', 'nospace', 'corrupt'];

export interface MaintenanceServiceOptions {
  backend: MaintenanceBackend;
  headerInfo: () => HeaderInfo;
  logger: Logger;
  streams: OpenStreams;
}

export function maintenanceServiceHandlers(
  options: MaintenanceServiceOptions,
): grpc.UntypedServiceImplementation {
  const { backend, headerInfo, logger } = options;
  const header = (revision: number): WireResponseHeader => encodeHeader(revision, headerInfo());
  return {
    Status: unaryHandler('Status', logger, async () => encodeStatus(await backend.status(), header)),
    Alarm: unaryHandler(
      'Alarm',
      logger,
      async ({ message }: Received<WireAlarmRequest>): Promise<WireAlarmResponse> => {
        const action = ALARM_ACTIONS[message.action];
        // etcd applies an unknown action as a no-op that matches no alarm.
        if (action === undefined) return { header: null, alarms: [] };
        const alarm = ALARM_TYPES[message.alarm];
        if (alarm === undefined) throw invalidArgument(`etcdserver: unknown alarm type ${message.alarm}`);
        const result = await backend.alarm({ action, memberId: message.memberID, alarm });
        return { header: null, alarms: result.alarms.map(encodeAlarmMember) };
      },
    ),
    Defragment: unaryHandler('Defragment', logger, async () => {
      await backend.defragment();
      return { header: null };
    }),
    Hash: unaryHandler('Hash', logger, async (): Promise<WireHashResponse> => {
      const result = await backend.hash();
      return { header: header(result.header.revision), hash: checkedUint32(result.hash) };
    }),
    HashKV: unaryHandler(
      'HashKV',
      logger,
      async ({ message }: Received<WireHashKVRequest>): Promise<WireHashKVResponse> => {
        const revision = parseInt64(message.revision, 'revision');
        const result = await backend.hashKV(revision);
        return {
          header: header(result.revision),
          hash: checkedUint32(result.hash),
          compactRevision: result.compactRevision,
          hashRevision: revision > 0 ? revision : result.revision,
        };
      },
    ),
    MoveLeader: unaryHandler('MoveLeader', logger, async ({ message }: Received<WireMoveLeaderRequest>) => {
      await backend.moveLeader(message.targetID);
      return { header: null };
    }),
    Snapshot: (call: grpc.ServerWritableStream<Received<unknown>, WireSnapshotResponse>) => {
      void sendSnapshot(call, options);
    },
  };
}

function checkedUint32(hash: number): number {
  assert(Number.isInteger(hash) && hash >= 0 && hash <= 0xffff_ffff, () => `hash ${hash} is not a uint32`);
  return hash;
}

function encodeAlarmMember(member: AlarmMember): WireAlarmMember {
  assert(isUint64Decimal(member.memberId), () => `alarm member ${member.memberId} is not a uint64 decimal`);
  return { memberID: member.memberId, alarm: ALARM_TYPES.indexOf(member.alarm) };
}

/**
 * etcd's Snapshot stream: the blob in messages of at most 32 KiB with the bytes still to come,
 * then one message holding the SHA-256 of every blob byte. Tessera pads the blob with zeros to a
 * multiple of 512 bytes first, because etcdctl snapshot save rejects other sizes. One message is
 * in flight at a time beyond grpc-js's buffer: the stream waits for 'drain' when a write is refused.
 */
async function sendSnapshot(
  call: grpc.ServerWritableStream<Received<unknown>, WireSnapshotResponse>,
  options: MaintenanceServiceOptions,
): Promise<void> {
  let closed = false;
  const unregister = options.streams.add(() => {
    closed = true;
    endWithStatus(call, SERVER_STOPPED);
  });
  call.on('cancelled', () => (closed = true));
  let snapshot: SnapshotStream | null = null;
  try {
    snapshot = await options.backend.snapshot();
    assert(Number.isSafeInteger(snapshot.size) && snapshot.size >= 0, 'snapshot size is a byte count');
    const padding = (SNAPSHOT_ALIGN_BYTES - (snapshot.size % SNAPSHOT_ALIGN_BYTES)) % SNAPSHOT_ALIGN_BYTES;
    const total = snapshot.size + padding;
    const sha = createHash('sha256');
    let sent = 0;
    const send = async (blob: Uint8Array) => {
      sent += blob.length;
      if (sent > total) throw new EtcdError(GrpcCode.INTERNAL, 'snapshot yielded more bytes than its size');
      sha.update(blob);
      if (!call.write({ header: null, remainingBytes: total - sent, blob })) await drained(call);
    };
    for await (const chunk of snapshot.chunks) {
      for (let offset = 0; offset < chunk.length && !closed; offset += SNAPSHOT_MESSAGE_BYTES) {
        await send(chunk.subarray(offset, offset + SNAPSHOT_MESSAGE_BYTES));
      }
      if (closed) return;
    }
    if (sent !== snapshot.size)
      throw new EtcdError(GrpcCode.INTERNAL, `snapshot yielded ${sent} bytes, announced ${snapshot.size}`);
    if (padding > 0) await send(new Uint8Array(padding));
    if (closed) return;
    call.write({ header: null, remainingBytes: 0, blob: sha.digest() });
    call.end();
  } catch (error) {
    if (!closed) endWithStatus(call, toStatus(error, 'Snapshot', options.logger));
  } finally {
    unregister();
    snapshot?.close?.();
  }
}

export function encodeStatus(
  status: StatusResult,
  header: (revision: number) => WireResponseHeader,
): WireStatusResponse {
  assert(isUint64Decimal(status.leader), () => `status leader ${status.leader} is not a uint64 decimal`);
  for (const n of [
    status.raftTerm,
    status.raftIndex,
    status.raftAppliedIndex,
    status.dbSize,
    status.dbSizeInUse,
  ]) {
    assert(Number.isSafeInteger(n) && n >= 0, () => `status field ${n} is not a count`);
  }
  const errors =
    status.leader === '0' && !status.errors.includes(NO_LEADER_ERROR)
      ? [NO_LEADER_ERROR, ...status.errors]
      : status.errors;
  return {
    header: header(status.header.revision),
    version: status.version,
    dbSize: status.dbSize,
    leader: status.leader,
    raftIndex: status.raftIndex,
    raftTerm: status.raftTerm,
    raftAppliedIndex: status.raftAppliedIndex,
    errors,
    dbSizeInUse: status.dbSizeInUse,
    isLearner: status.isLearner,
  };
}
