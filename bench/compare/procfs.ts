// Reads process CPU time and memory from /proc (Linux): utime+stime per process, a process's
// descendants, and VmRSS/VmHWM. Used to charge each cluster for the CPU it spends per operation.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | null = null;

/** Clock ticks per second of utime/stime (getconf CLK_TCK; 100 on every common Linux). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of one process in seconds, or null if it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[14 - 3]);
    const stime = Number(fields[15 - 3]);
    return (utime + stime) / clockTicksPerSecond();
  } catch {
    return null;
  }
}

/** CPU seconds of each pid (processes that are gone count 0). */
export function cpuSnapshot(pids: number[]): Map<number, number> {
  return new Map(pids.map((pid) => [pid, cpuSeconds(pid) ?? 0]));
}

/** CPU seconds spent between two snapshots, summed over the pids of the first. */
export function cpuSpent(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, start] of before) total += Math.max(0, (after.get(pid) ?? start) - start);
  return total;
}

/** Direct children of pid (from every thread's children list). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (list !== '') children.push(...list.split(/\s+/).map(Number));
    }
  } catch {
    // The process is gone: no children.
  }
  return children;
}

/** pid and all its descendants. */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length && all.length < 1_000; i++) all.push(...childrenOf(all[i]));
  return all;
}

/** A /proc/<pid>/status memory field (VmRSS, VmHWM) in MiB, or null if the process is gone. */
export function memoryMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}
