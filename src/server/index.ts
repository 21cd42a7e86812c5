// The server layer: a node hosting Raft group replicas, routing client requests to them.
export { TesseraNode } from './node.ts';
export { parseNodeConfig, readConfigFile, parseHostPort, ConfigError, NodeConfigSchema, LimitsSchema } from './config.ts';
export type { NodeConfig, NodeConfigInput, Limits } from './config.ts';
export { memberId, parseInitialCluster } from './members.ts';
export { restoreBackup } from './restore.ts';
export type { Member } from './members.ts';
