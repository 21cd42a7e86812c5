// The linearizability checker, its models and its reports (used by the chaos runner and tests).
export { checkLinearizable, checkPartition, hashString, IMPOSSIBLE } from './linearizability.ts';
export type { CheckOptions, CheckResult, Model, Operation, PartitionResult, Verdict } from './linearizability.ts';
export { bankModel, joinList, listModel, registerModel } from './models.ts';
export type { BankInput, BankOutput, ListInput, ListOutput, ListState, RegisterInput, RegisterOutput, RegisterState } from './models.ts';
export { explain, htmlTimeline, textReport, textTimeline } from './report.ts';
export type { Explanation, TimelineBand } from './report.ts';
