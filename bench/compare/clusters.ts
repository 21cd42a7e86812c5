// Fresh 3-node clusters on loopback for the side-by-side benchmark: etcd (the `etcd` binary,
// defaults, fsync on) and Tessera (`tessera dev`), each in its own temp data directory, with the
// processes whose CPU and memory the comparison charges to it.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { devClientPort, probeEndpoint } from '../../src/cli/index.ts';
import { commandLine, processTree } from './procfs.ts';

export type SystemName = 'etcd' | 'tessera';

export interface BenchCluster {
  readonly system: SystemName;
  readonly endpoints: string[];
  /** Every process the cluster is charged CPU for (tessera: dev and everything under it). */
  readonly processes: number[];
  /** One server process per node, in node order (for RSS). */
  readonly nodePids: number[];
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;
const NODES = 3;
/** This checkout; startTessera can run another one's build instead (bench/ab.ts). */
const thisCheckout = fileURLToPath(new URL('../../', import.meta.url));

/** Tessera is measured as it is deployed: the bundled JavaScript (scripts/build.mjs), not through tsx. */
function buildTessera(checkout: string): void {
  const result = spawnSync(process.execPath, [join(checkout, 'scripts/build.mjs'), '--if-stale'], { stdio: 'inherit', cwd: checkout });
  if (result.status !== 0) throw new Error(`the build of ${checkout} failed; see above`);
}

/** Every process started here, killed if this process exits without stopping them. */
const started = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of started) {
    if (child.pid === undefined || child.exitCode !== null) continue;
    for (const pid of processTree(child.pid).reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** `etcd --version`'s first line, or null when etcd is not installed. */
export function etcdVersion(): string | null {
  const result = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return null;
  return result.stdout.split('\n')[0].trim();
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function requireFreePorts(ports: number[], who: string): Promise<void> {
  for (const port of ports) {
    if (!(await portFree(port))) throw new Error(`${who}: port ${port} is in use (a previous run still going?); pass another --base-port`);
  }
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) for (const pid of processTree(child.pid).reverse()) tryKill(pid);
    }, STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      started.delete(child);
      resolve();
    });
    child.kill(signal);
  });
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Three etcd members: client ports base, base+1000, base+2000; peer port = client port + 1. */
export async function startEtcd(dataRoot: string, basePort: number): Promise<BenchCluster> {
  const clientPorts = Array.from({ length: NODES }, (_, i) => basePort + 1000 * i);
  await requireFreePorts(clientPorts.flatMap((p) => [p, p + 1]), 'etcd');
  const names = clientPorts.map((_, i) => `etcd${i + 1}`);
  const initialCluster = names.map((name, i) => `${name}=http://127.0.0.1:${clientPorts[i] + 1}`).join(',');
  mkdirSync(dataRoot, { recursive: true });
  const children = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${clientPorts[i]}`;
    const peerUrl = `http://127.0.0.1:${clientPorts[i] + 1}`;
    const log = openSync(join(dataRoot, `${name}.log`), 'a');
    const child = spawn(
      'etcd',
      [
        '--name', name,
        '--data-dir', join(dataRoot, name),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', 'tessera-bench-compare',
        '--logger', 'zap',
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', log, log] },
    );
    started.add(child);
    return child;
  });
  const endpoints = clientPorts.map((p) => `127.0.0.1:${p}`);
  // SIGKILL: a graceful etcd stop transfers leadership first and takes seconds; the data is thrown away.
  const stop = async () => {
    await Promise.all(children.map((child) => stopChild(child, 'SIGKILL')));
  };
  try {
    await Promise.all(endpoints.map((endpoint) => probeEndpoint(endpoint, READY_TIMEOUT_MS)));
  } catch (error) {
    await stop();
    throw new Error(`etcd did not start: ${(error as Error).message}; logs in ${dataRoot}`);
  }
  const pids = children.map((child) => child.pid ?? -1);
  return { system: 'etcd', endpoints, processes: pids, nodePids: pids, stop };
}

/**
 * `tessera dev --port base`: client ports base, base+20000, base+30000 (devClientPort). `checkout`
 * is the Tessera checkout whose build runs (default: this one).
 */
export async function startTessera(dataRoot: string, basePort: number, env: NodeJS.ProcessEnv = {}, checkout = thisCheckout): Promise<BenchCluster> {
  const clientPorts = Array.from({ length: NODES }, (_, i) => devClientPort(basePort, i));
  await requireFreePorts(clientPorts.flatMap((p) => [p, p + 1]), 'tessera');
  buildTessera(checkout);
  mkdirSync(dataRoot, { recursive: true });
  const log = join(dataRoot, 'dev.out');
  const out = openSync(log, 'a');
  const child = spawn(
    process.execPath,
    [join(checkout, 'bin/tessera.js'), 'dev', '--nodes', String(NODES), '--data-dir', dataRoot, '--port', String(basePort)],
    { stdio: ['ignore', out, out], env: { ...process.env, ...env } },
  );
  started.add(child);
  const stop = () => stopChild(child);
  const ready = await waitForLine(child, log, 'ready: endpoints=', READY_TIMEOUT_MS);
  if (!ready) {
    await stop();
    throw new Error(`tessera dev did not become ready; output:\n${readFileSync(log, 'utf8').split('\n').slice(-20).join('\n')}`);
  }
  const pid = child.pid ?? -1;
  const processes = processTree(pid);
  const nodePids = processes.filter((p) => p !== pid && / start /.test(commandLine(p)));
  return { system: 'tessera', endpoints: clientPorts.map((p) => `127.0.0.1:${p}`), processes, nodePids, stop };
}

async function waitForLine(child: ChildProcess, log: string, marker: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    try {
      if (readFileSync(log, 'utf8').includes(marker)) return true;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}
