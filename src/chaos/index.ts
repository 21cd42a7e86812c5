// Jepsen-style fault testing of real Tessera clusters: workloads that record client histories,
// a nemesis that kills, pauses, partitions, slows or fails disks, skews clocks, replaces members
// and moves leaders, and a linearizability checker for the histories.
export * from './checker/index.ts';
export { Random } from './random.ts';
export { Clock, History } from './history.ts';
export type { HistoryOp, OpStatus } from './history.ts';
export { CallError, EtcdClient, prefixEnd, toCallError } from './client.ts';
export type { MemberInfo } from './client.ts';
export { CONTROLLED_FAULTS, FAULT_KINDS, Nemesis, controlRequest } from './nemesis.ts';
export { MemberReplacer } from './membership.ts';
export type { FaultKind, NemesisEvent, NemesisTiming } from './nemesis.ts';
export { WORKLOADS } from './workloads/common.ts';
export type { WorkloadName, WorkloadResult } from './workloads/common.ts';
export { runChaos, supportsFaultInjection } from './run.ts';
export type { ChaosOptions, ChaosResult } from './run.ts';
export { ProcessCluster, freePort } from './cluster.ts';
export type { ClusterNode, ProcessClusterOptions, UnexpectedExit } from './cluster.ts';
