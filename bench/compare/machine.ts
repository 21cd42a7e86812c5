// What the comparison ran on: cores, CPU model, memory, the disk's fsync latency (a write+fdatasync
// loop in the directory the clusters use), and how busy the machine was.
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  etcd: string | null;
  fsync: { samples: number; p50Ms: number; p99Ms: number; meanMs: number; dir: string };
  loadAverageAtStart: number[];
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return match ? match[1].trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Latency of a 4 KiB write + fdatasync, `samples` times, on the file system holding `dir`. */
export function measureFsync(dir: string, samples = 200): MachineInfo['fsync'] {
  const path = join(dir, 'fsync-probe');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    // Allocate the blocks first: the timed loop overwrites them, as a log's steady state does.
    for (let i = 0; i < 64; i++) writeSync(fd, block, 0, block.length, i * 4096);
    fdatasyncSync(fd);
    for (let i = 0; i < samples; i++) {
      const start = process.hrtime.bigint();
      writeSync(fd, block, 0, block.length, (i % 64) * 4096);
      fdatasyncSync(fd);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  times.sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    samples,
    p50Ms: round(times[Math.floor(samples * 0.5)]),
    p99Ms: round(times[Math.min(samples - 1, Math.floor(samples * 0.99))]),
    meanMs: round(times.reduce((a, b) => a + b, 0) / samples),
    dir,
  };
}

export function machineInfo(dir: string, etcd: string | null): MachineInfo {
  return {
    cores: availableParallelism(),
    cpuModel: cpuModel(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    etcd,
    fsync: measureFsync(dir),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
