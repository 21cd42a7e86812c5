// The server layer: a node hosting Raft group replicas, routing client requests to them.
export { TesseraNode } from './node.ts';
export { parseNodeConfig, readConfigFile, parseHostPort, ConfigError, NodeConfigSchema, LimitsSchema } from './config.ts';
export type { NodeConfig, NodeConfigInput, Limits } from './config.ts';
export { memberId, parseInitialCluster } from './members.ts';
export { restoreBackup } from './restore.ts';
export type { Member } from './members.ts';
// TEST-ONLY planted bugs (TESSERA_PLANTED_BUG), for proving that the chaos harness catches them.
export { PLANTED_BUGS, PLANTED_BUG_ENV } from './planted.ts';
export type { PlantedBug } from './planted.ts';
// For the whole-node simulator (src/simnode): the multi-Raft loop with injected I/O and its replicas.
export { ReplicaHost } from './host.ts';
export type { HostOptions, HostStorage, HostTransport } from './host.ts';
export { Replica, bootstrapEntries, encodeConfContext } from './replica.ts';
export type { ReplicaStorage } from './replica.ts';
export { NodeMetrics } from './metrics.ts';
export type { Command } from './commands.ts';
