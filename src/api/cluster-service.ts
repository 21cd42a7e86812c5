// The etcdserverpb.Cluster service: membership listing and changes, mapped onto a ClusterBackend.
// As in etcd (v3rpc/member.go), cluster responses carry cluster, member and term but revision 0.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';
import type { ClusterBackend, HeaderInfo, MemberInfo } from './backend.ts';
import { encodeHeader, isUint64Decimal } from './codec.ts';
import { unaryHandler } from './handlers.ts';
import type { Received } from './protos.ts';
import { ApiErrors } from './errors.ts';
import type {
  WireMember,
  WireMemberAddRequest,
  WireMemberIdRequest,
  WireMemberListRequest,
  WireMemberUpdateRequest,
  WireResponseHeader,
} from './wire.ts';

/** scheme://host:port with nothing after it, as Go's types.NewURLs accepts (IPv6 hosts in brackets). */
const MEMBER_URL = /^(?:https?|unixs?):\/\/(?:\[[^\]]*\]|[^/?#@[\]:]*):[0-9]*$/;

export interface ClusterServiceOptions {
  backend: ClusterBackend;
  headerInfo: () => HeaderInfo;
  logger: Logger;
}

export function clusterServiceHandlers(options: ClusterServiceOptions): grpc.UntypedServiceImplementation {
  const { backend, headerInfo, logger } = options;
  const header = (): WireResponseHeader => encodeHeader(0, headerInfo());
  return {
    MemberList: unaryHandler('MemberList', logger, async ({ message }: Received<WireMemberListRequest>) => {
      const result = await backend.memberList({ linearizable: message.linearizable });
      return { header: header(), members: result.members.map(encodeMember) };
    }),
    MemberAdd: unaryHandler('MemberAdd', logger, async ({ message }: Received<WireMemberAddRequest>) => {
      const peerURLs = checkPeerURLs(message.peerURLs);
      const result = await backend.memberAdd({ peerURLs, isLearner: message.isLearner });
      // etcd's MemberAdd answers with the new member's ID, peer URLs and learner flag only.
      const { ID, peerURLs: urls, isLearner } = encodeMember(result.member);
      return {
        header: header(),
        member: { ID, name: '', peerURLs: urls, clientURLs: [], isLearner },
        members: result.members.map(encodeMember),
      };
    }),
    MemberRemove: unaryHandler('MemberRemove', logger, async ({ message }: Received<WireMemberIdRequest>) => {
      const result = await backend.memberRemove(message.ID);
      return { header: header(), members: result.members.map(encodeMember) };
    }),
    MemberUpdate: unaryHandler(
      'MemberUpdate',
      logger,
      async ({ message }: Received<WireMemberUpdateRequest>) => {
        // etcd 3.4 passes the update's URLs on unchecked; the conf change validates them against the cluster.
        const result = await backend.memberUpdate({ id: message.ID, peerURLs: message.peerURLs });
        return { header: header(), members: result.members.map(encodeMember) };
      },
    ),
    MemberPromote: unaryHandler(
      'MemberPromote',
      logger,
      async ({ message }: Received<WireMemberIdRequest>) => {
        const result = await backend.memberPromote(message.ID);
        return { header: header(), members: result.members.map(encodeMember) };
      },
    ),
  };
}

/** etcd's types.NewURLs: at least one, each scheme://host:port without a path; trimmed and sorted. */
export function checkPeerURLs(urls: readonly string[]): string[] {
  if (urls.length === 0) throw ApiErrors.memberBadURLs();
  const trimmed = urls.map((url) => url.trim());
  if (!trimmed.every((url) => MEMBER_URL.test(url))) throw ApiErrors.memberBadURLs();
  return trimmed.sort();
}

export function encodeMember(member: MemberInfo): WireMember {
  assert(isUint64Decimal(member.id), () => `member ID ${member.id} is not a uint64 decimal`);
  return {
    ID: member.id,
    name: member.name,
    peerURLs: member.peerURLs,
    clientURLs: member.clientURLs,
    isLearner: member.isLearner,
  };
}
