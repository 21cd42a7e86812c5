// Cluster membership as configured: member IDs derived like etcd's (a hash of peer URLs and the
// cluster token), so every node computes the same IDs from the same --initial-cluster.
import { createHash } from 'node:crypto';
import { ConfigError, parseHostPort } from './config.ts';
import type { NodeConfig } from './config.ts';

export interface Member {
  id: number;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
}

/** 52-bit IDs: nonzero, and exact as JavaScript numbers (see docs/ARCHITECTURE.md on int64). */
export function memberId(peerUrls: string[], clusterToken: string): number {
  const digest = createHash('sha256').update([...peerUrls].sort().join(',')).update(clusterToken).digest();
  const id = digest.readUIntBE(0, 6) * 16 + (digest[6] >> 4);
  return id === 0 ? 1 : id;
}

/**
 * The cluster ID comes from the cluster token alone, so a member joining later (which knows the
 * token but not the founding members) computes the same one. Give each cluster its own
 * --initial-cluster-token, as etcd advises, and peers of different clusters refuse each other.
 */
export function clusterIdOf(clusterToken: string): number {
  return memberId(['tessera-cluster-id'], clusterToken);
}

/** Parses `name=url,name=url` (a name may repeat for several peer URLs, as in etcd). */
export function parseInitialCluster(spec: string, clusterToken: string): Member[] {
  const byName = new Map<string, string[]>();
  for (const part of spec.split(',').map((p) => p.trim()).filter((p) => p.length > 0)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--initial-cluster entry "${part}" must look like name=http://host:port`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    parseHostPort(url);
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  if (byName.size === 0) throw new ConfigError('--initial-cluster is empty');
  return [...byName].map(([name, peerUrls]) => ({ id: memberId(peerUrls, clusterToken), name, peerUrls, clientUrls: [] }));
}

/** The initial members this node starts with, checking that it is one of them. */
export function initialMembers(config: NodeConfig): { self: Member; members: Member[] } {
  const peerUrls = config.initialAdvertisePeerUrls ?? config.listenPeerUrls;
  const spec = config.initialCluster ?? `${config.name}=${peerUrls.join(`,${config.name}=`)}`;
  const members = parseInitialCluster(spec, config.initialClusterToken);
  const self = members.find((m) => m.name === config.name);
  if (!self) throw new ConfigError(`--name ${config.name} is not in --initial-cluster ${spec}`);
  const clientUrls = config.advertiseClientUrls ?? config.listenClientUrls;
  return { self: { ...self, clientUrls }, members: members.map((m) => (m.id === self.id ? { ...m, clientUrls } : m)) };
}
