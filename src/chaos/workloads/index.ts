// The workloads, by name.
import { unreachable } from '../../util/index.ts';
import type { Workload, WorkloadContext, WorkloadName } from './common.ts';
import { AppendWorkload } from './append.ts';
import { BankWorkload } from './bank.ts';
import { LockWorkload } from './lock.ts';
import { RegisterWorkload } from './register.ts';
import { WatchWorkload } from './watch.ts';

export function createWorkload(name: WorkloadName, ctx: WorkloadContext, workers: number): Workload {
  switch (name) {
    case 'register':
      return new RegisterWorkload(ctx, { workers });
    case 'bank':
      return new BankWorkload(ctx, { workers });
    case 'append':
      return new AppendWorkload(ctx, { workers });
    case 'watch':
      return new WatchWorkload(ctx, { workers });
    case 'lock':
      return new LockWorkload(ctx, { workers });
    default:
      return unreachable(name, 'workload');
  }
}
