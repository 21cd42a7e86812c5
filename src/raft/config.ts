// Default RaftConfig values (etcd-like) and the validation every Raft instance runs at start.
import { ConfigError } from './errors.ts';
import type { NodeId, RaftConfig, Rng } from './types.ts';

export const MIB = 1024 * 1024;

/** Max read-index requests waiting for a quorum of heartbeat acks (or for the first commit in term). */
export const MAX_PENDING_READ_INDEX = 4096;
/** Max read requests a new leader holds until it has committed an entry in its term. */
export const MAX_PENDING_READS_BEFORE_COMMIT = 1024;
/** Max messages queued for the next Ready; past it local proposals are refused, peer traffic dropped. */
export const MAX_OUTBOX_MESSAGES = 65536;
/** Max read states waiting for the next Ready. */
export const MAX_PENDING_READ_STATES = 4096;

/**
 * etcd-like defaults. Choices beyond etcd's:
 * - `maxUncommittedEntriesSize` 1 GiB (etcd: unlimited): always a bound, well above any sane batch.
 * - `maxCommittedSizePerReady` 8 MiB (etcd: maxSizePerMsg): apply in bigger batches than we send.
 */
export function defaultRaftConfig(id: NodeId, rng: Rng, overrides: Partial<RaftConfig> = {}): RaftConfig {
  const config: RaftConfig = {
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    applied: 0,
    maxSizePerMsg: 1 * MIB,
    maxInflightMsgs: 256,
    maxInflightBytes: 0,
    maxUncommittedEntriesSize: 1024 * MIB,
    maxCommittedSizePerReady: 8 * MIB,
    checkQuorum: true,
    preVote: true,
    readOnlyOption: 'safe',
    disableProposalForwarding: false,
    rng,
    ...overrides,
  };
  validateRaftConfig(config);
  return config;
}

/** Throws ConfigError when the config cannot work. */
export function validateRaftConfig(config: RaftConfig): void {
  const positive = (value: number): boolean => Number.isSafeInteger(value) && value > 0;
  const nonNegative = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;
  if (!positive(config.id)) throw new ConfigError('id must be a positive safe integer');
  if (!positive(config.heartbeatTicks)) throw new ConfigError('heartbeatTicks must be > 0');
  if (!positive(config.electionTicks) || config.electionTicks <= config.heartbeatTicks) {
    throw new ConfigError('electionTicks must be greater than heartbeatTicks');
  }
  if (!nonNegative(config.applied)) throw new ConfigError('applied must be >= 0');
  if (!positive(config.maxSizePerMsg)) throw new ConfigError('maxSizePerMsg must be > 0');
  if (!positive(config.maxInflightMsgs)) throw new ConfigError('maxInflightMsgs must be > 0');
  if (!nonNegative(config.maxInflightBytes)) throw new ConfigError('maxInflightBytes must be >= 0');
  if (config.maxInflightBytes !== 0 && config.maxInflightBytes < config.maxSizePerMsg) {
    throw new ConfigError('maxInflightBytes must be >= maxSizePerMsg');
  }
  if (!nonNegative(config.maxUncommittedEntriesSize)) throw new ConfigError('maxUncommittedEntriesSize must be >= 0');
  if (!nonNegative(config.maxCommittedSizePerReady)) throw new ConfigError('maxCommittedSizePerReady must be >= 0');
}
