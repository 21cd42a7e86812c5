// TEST-ONLY planted bugs, to prove that the chaos harness catches what it claims to catch. A node
// reads TESSERA_PLANTED_BUG once at start and logs it loudly; never set it outside a test.
//   stale-reads       linearizable reads are served from the local state machine at once, without
//                     a ReadIndex round (a lagging follower or a deposed leader answers stale data)
//   ack-before-fsync  the loop treats every commit as durable at once and writes to disk only every
//                     ACK_BEFORE_FSYNC_FLUSH_MS, so votes and appends are acknowledged before they
//                     are durable and a SIGKILL loses them
import type { HostStorage } from './host.ts';
import type { Replica } from './replica.ts';

export type PlantedBug = 'stale-reads' | 'ack-before-fsync';
export const PLANTED_BUGS: readonly PlantedBug[] = ['stale-reads', 'ack-before-fsync'];
export const PLANTED_BUG_ENV = 'TESSERA_PLANTED_BUG';

/** How long `ack-before-fsync` lets writes sit in memory after it acknowledged them. */
export const ACK_BEFORE_FSYNC_FLUSH_MS = 1_000;

/** The planted bug named by the environment, or null. An unknown name is refused (the node does not start). */
export function plantedBugFromEnv(env: NodeJS.ProcessEnv = process.env): PlantedBug | null {
  const value = env[PLANTED_BUG_ENV];
  if (value === undefined || value === '') return null;
  if (!(PLANTED_BUGS as readonly string[]).includes(value)) {
    throw new Error(`${PLANTED_BUG_ENV}=${value}: unknown planted bug (${PLANTED_BUGS.join(', ')})`);
  }
  return value as PlantedBug;
}

/** `stale-reads`: the replica answers linearizable reads from whatever it has applied. */
export function plantStaleReads(replica: Replica): void {
  replica.linearizableRead = <T>(run: () => T): Promise<T> => {
    try {
      return Promise.resolve(run());
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
}

/**
 * `ack-before-fsync`: commit() resolves at once; what was staged is written by a timer later.
 * A failure of that late write is not reported to anyone (the bug hides it, as such bugs do).
 */
export function ackBeforeFsync(storage: HostStorage): HostStorage {
  let timer: NodeJS.Timeout | null = null;
  const flushLater = () => {
    timer = null;
    storage.commit().catch(() => undefined);
  };
  return {
    group: (groupId) => storage.group(groupId),
    snapshotPiecesWithinBound: () => storage.snapshotPiecesWithinBound?.() ?? Promise.resolve(),
    commit: () => {
      if (timer === null) {
        timer = setTimeout(flushLater, ACK_BEFORE_FSYNC_FLUSH_MS);
        timer.unref();
      }
      return Promise.resolve();
    },
  };
}
