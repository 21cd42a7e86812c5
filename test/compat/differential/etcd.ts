// A fresh, real 3-member etcd cluster on loopback (Debian's `etcd` binary, default settings), each
// member with its own data directory in a temp folder, removed again by stop(). The reference side
// of the differential suite.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeEndpoint } from '../../../src/cli/index.ts';
import { freePort } from '../../support/cluster.ts';

/** `etcd --version`'s first line, or null when etcd is not installed. */
export function etcdVersion(): string | null {
  const result = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) return null;
  return result.stdout.split('\n')[0].trim();
}

/** Ports handed out by this process: freePort() checks a port is free but does not hold it. */
const handedOut = new Set<number>();

async function uniquePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no unused free port');
}

/** Every member started by this process, killed if the process exits without stop(). */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class EtcdCluster {
  private constructor(
    readonly root: string,
    private readonly children: ChildProcess[],
    private readonly clientPorts: number[],
  ) {}

  static async start(members = 3, readyTimeoutMs = 60_000): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'tessera-etcd-'));
    const clientPorts: number[] = [];
    const peerPorts: number[] = [];
    for (let i = 0; i < members; i++) {
      clientPorts.push(await uniquePort());
      peerPorts.push(await uniquePort());
    }
    const names = clientPorts.map((_, i) => `etcd${i + 1}`);
    const initialCluster = names.map((name, i) => `${name}=http://127.0.0.1:${peerPorts[i]}`).join(',');
    const children = names.map((name, i) => {
      const clientUrl = `http://127.0.0.1:${clientPorts[i]}`;
      const peerUrl = `http://127.0.0.1:${peerPorts[i]}`;
      const log = openSync(join(root, `${name}.log`), 'a');
      // prettier-ignore
      const child = spawn('etcd', [
        '--name', name,
        '--data-dir', join(root, name),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', `tessera-differential-${process.pid}`,
        '--logger', 'zap',
        '--log-level', 'warn',
      ], { stdio: ['ignore', log, log] });
      running.add(child);
      return child;
    });
    const cluster = new EtcdCluster(root, children, clientPorts);
    // A member that exits while starting (a port taken meanwhile) fails the start at once.
    const exited = new Promise<never>((_, reject) => {
      for (const child of children) child.once('exit', (code) => reject(new Error(`a member exited with code ${code} while starting`)));
    });
    exited.catch(() => {});
    try {
      await Promise.race([Promise.all(cluster.endpoints().map((endpoint) => probeEndpoint(endpoint, readyTimeoutMs))), exited]);
    } catch (error) {
      const logs = names.map((name) => `--- ${name}\n${tail(join(root, `${name}.log`))}`).join('\n');
      await cluster.stop();
      throw new Error(`etcd did not start: ${(error as Error).message}\n${logs}`);
    }
    return cluster;
  }

  endpoints(): string[] {
    return this.clientPorts.map((port) => `127.0.0.1:${port}`);
  }

  /** Member i's log. */
  log(i: number): string {
    try {
      return readFileSync(join(this.root, `etcd${i + 1}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGKILL (the data is thrown away; a graceful stop would first hand over leadership). */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            running.delete(child);
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    rmSync(this.root, { recursive: true, force: true });
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-8).join('\n');
  } catch {
    return '(no log)';
  }
}
