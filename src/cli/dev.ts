// `tessera dev`: a local cluster of child processes on loopback. Waits until every node answers a
// linearizable read, prints one `ready: endpoints=...` line, and stops every node on Ctrl-C.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeEndpoint } from './probe.ts';

export interface DevOptions {
  nodes: number;
  dataDir: string;
  port: number;
  unsafeNoFsync?: boolean;
}

const maxNodes = 5;
const readyTimeoutMs = 60_000;

/** Client ports 2379, 22379, 32379, 42379, 52379 for the default --port; peer port = client port + 1. */
export function devClientPort(basePort: number, index: number): number {
  return index === 0 ? basePort : basePort + 10_000 * (index + 1);
}

interface DevNode {
  name: string;
  clientPort: number;
  logPath: string;
  child: ChildProcess;
}

export async function runDev(options: DevOptions): Promise<void> {
  if (options.nodes < 1 || options.nodes > maxNodes) {
    console.error(`tessera dev: --nodes must be between 1 and ${maxNodes}`);
    process.exit(2);
  }
  if (devClientPort(options.port, options.nodes - 1) + 1 > 65_535) {
    console.error(`tessera dev: --port ${options.port} leaves no room for ${options.nodes} nodes (ports up to 65535)`);
    process.exit(2);
  }
  const nodes = startNodes(options);
  let stopping = false;
  const stopAll = (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('stopping all nodes...');
    let running = nodes.filter((n) => n.child.exitCode === null).length;
    if (running === 0) process.exit(code);
    for (const n of nodes) {
      n.child.once('exit', () => --running === 0 && process.exit(code));
      n.child.kill('SIGTERM');
    }
    setTimeout(() => process.exit(code), 10_000).unref();
  };
  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));
  for (const n of nodes) {
    n.child.once('exit', (code, signal) => {
      if (stopping) return;
      console.error(`tessera dev: node ${n.name} exited (${signal ?? code}); last log lines:\n${tail(n.logPath)}`);
      stopAll(1);
    });
  }
  const endpoints = nodes.map((n) => `127.0.0.1:${n.clientPort}`);
  try {
    await Promise.all(endpoints.map((e) => probeEndpoint(e, readyTimeoutMs)));
  } catch (error) {
    console.error(`tessera dev: cluster not ready: ${(error as Error).message}`);
    stopAll(1);
    return;
  }
  console.log(`logs: ${nodes.map((n) => n.logPath).join(' ')}`);
  console.log(`try: etcdctl --endpoints=${endpoints.join(',')} put foo bar`);
  console.log(`ready: endpoints=${endpoints.join(',')}`);
}

function startNodes(options: DevOptions): DevNode[] {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const names = Array.from({ length: options.nodes }, (_, i) => `node${i + 1}`);
  const peerUrl = (i: number) => `http://127.0.0.1:${devClientPort(options.port, i) + 1}`;
  const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(',');
  const cli = fileURLToPath(new URL('./main.ts', import.meta.url));
  return names.map((name, i) => {
    const clientPort = devClientPort(options.port, i);
    const args = [
      '--import', 'tsx', cli, 'start',
      '--name', name,
      '--data-dir', join(dataDir, name),
      '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', peerUrl(i),
      '--initial-advertise-peer-urls', peerUrl(i),
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      ...(options.unsafeNoFsync ? ['--unsafe-no-fsync'] : []),
    ];
    const logPath = join(dataDir, `${name}.log`);
    const log = openSync(logPath, 'a');
    // stdin is a pipe the child watches: if this process dies, even by SIGKILL, its nodes follow.
    const child = spawn(process.execPath, args, {
      stdio: ['pipe', log, log],
      env: { ...process.env, TESSERA_EXIT_WITH_PARENT: '1' },
    });
    return { name, clientPort, logPath, child };
  });
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}
