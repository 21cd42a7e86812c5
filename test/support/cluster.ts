// Real-process clusters for tests: `tessera start` children on loopback, each with its own data
// directory in a temp folder; kill (SIGKILL), pause, restart; logs kept for failure reports.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeEndpoint } from '../../src/cli/index.ts';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ClusterNode {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logPath: string;
  proc: ChildProcess | null;
}

export interface ProcessClusterOptions {
  nodes?: number;
  extraArgs?: string[];
}

export class ProcessCluster {
  readonly root: string;
  readonly nodes: ClusterNode[];
  private readonly extraArgs: string[];

  private constructor(root: string, nodes: ClusterNode[], extraArgs: string[]) {
    this.root = root;
    this.nodes = nodes;
    this.extraArgs = extraArgs;
  }

  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const count = options.nodes ?? 3;
    const root = mkdtempSync(join(tmpdir(), 'tessera-cluster-'));
    const nodes: ClusterNode[] = [];
    for (let i = 0; i < count; i++) {
      const name = `n${i + 1}`;
      nodes.push({
        name,
        clientPort: await freePort(),
        peerPort: await freePort(),
        dataDir: join(root, name),
        logPath: join(root, `${name}.log`),
        proc: null,
      });
    }
    const cluster = new ProcessCluster(root, nodes, options.extraArgs ?? []);
    for (let i = 0; i < count; i++) cluster.spawnNode(i);
    await cluster.waitReady();
    return cluster;
  }

  endpoint(i: number): string {
    return `127.0.0.1:${this.nodes[i].clientPort}`;
  }

  endpoints(): string[] {
    return this.nodes.map((_, i) => this.endpoint(i));
  }

  private spawnNode(i: number): void {
    const node = this.nodes[i];
    const initialCluster = this.nodes.map((n) => `${n.name}=http://127.0.0.1:${n.peerPort}`).join(',');
    const args = [
      '--import', 'tsx', cli, 'start',
      '--name', node.name,
      '--data-dir', node.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${node.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${node.peerPort}`,
      '--initial-cluster', initialCluster,
      '--log-level', 'debug',
      ...this.extraArgs,
    ];
    const log = openSync(node.logPath, 'a');
    node.proc = spawn(process.execPath, args, { stdio: ['ignore', log, log] });
  }

  /** Waits until every running node answers a linearizable read. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const running = this.nodes.map((n, i) => (n.proc ? i : -1)).filter((i) => i >= 0);
    await Promise.all(running.map((i) => probeEndpoint(this.endpoint(i), timeoutMs)));
  }

  kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.nodes[i].proc;
    this.nodes[i].proc = null;
    if (!proc || proc.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(signal);
    });
  }

  async restart(i: number, timeoutMs = 30_000): Promise<void> {
    if (this.nodes[i].proc) await this.kill(i);
    this.spawnNode(i);
    await probeEndpoint(this.endpoint(i), timeoutMs);
  }

  log(i: number): string {
    try {
      return readFileSync(this.nodes[i].logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async stop(options: { keepData?: boolean } = {}): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i, 'SIGKILL')));
    if (!options.keepData) rmSync(this.root, { recursive: true, force: true });
  }
}
