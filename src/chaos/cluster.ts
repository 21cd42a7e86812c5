// Real-process clusters for tests: `tessera start` children on loopback, each with its own data
// directory in a temp folder; kill (SIGKILL), pause (SIGSTOP/SIGCONT), restart; logs kept for
// failure reports. Optionally a metrics/control port per node (fault injection for chaos tests).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeEndpoint } from '../cli/index.ts';

const cli = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

/**
 * A free loopback port below Linux's ephemeral range (32768+): ports the OS hands out for
 * outgoing connections never collide with it between this check and the node's listen.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 20000-32000');
}

export interface ClusterNode {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logPath: string;
  /** `--listen-metrics-urls` port (health, metrics, /debug/faults), when the cluster asked for one. */
  metricsPort: number | null;
  proc: ChildProcess | null;
  /** Stopped with SIGSTOP and not yet continued. */
  paused: boolean;
}

export interface ProcessClusterOptions {
  nodes?: number;
  extraArgs?: string[];
  /** Node log level (default debug). */
  logLevel?: string;
  /** Give each node a metrics port (`--listen-metrics-urls http://127.0.0.1:<port>`). */
  metrics?: boolean;
  /** Serve /debug/faults on the metrics port (`--experimental-fault-injection`); implies `metrics`. */
  faultInjection?: boolean;
  /** Nodes shut themselves down when this process exits (they watch their stdin). */
  exitWithParent?: boolean;
  /** Where the data directories and logs go (default: a new temp directory). */
  root?: string;
  /** How long start() waits for every node to serve (default 30 s). */
  readyTimeoutMs?: number;
}

export class ProcessCluster {
  readonly root: string;
  readonly nodes: ClusterNode[];
  private readonly extraArgs: string[];
  private readonly options: ProcessClusterOptions;

  private constructor(root: string, nodes: ClusterNode[], options: ProcessClusterOptions) {
    this.root = root;
    this.nodes = nodes;
    this.extraArgs = options.extraArgs ?? [];
    this.options = options;
  }

  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const count = options.nodes ?? 3;
    const root = options.root ?? mkdtempSync(join(tmpdir(), 'tessera-cluster-'));
    mkdirSync(root, { recursive: true });
    const withMetrics = options.metrics === true || options.faultInjection === true;
    const nodes: ClusterNode[] = [];
    // The OS may hand the same free port out twice in a row: keep this cluster's ports distinct.
    const taken = new Set<number>();
    const port = async (): Promise<number> => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < count; i++) {
      const name = `n${i + 1}`;
      nodes.push({
        name,
        clientPort: await port(),
        peerPort: await port(),
        dataDir: join(root, name),
        logPath: join(root, `${name}.log`),
        metricsPort: withMetrics ? await port() : null,
        proc: null,
        paused: false,
      });
    }
    const cluster = new ProcessCluster(root, nodes, options);
    for (let i = 0; i < count; i++) cluster.spawnNode(i);
    try {
      await cluster.waitReady(options.readyTimeoutMs);
    } catch (error) {
      await cluster.stop({ keepData: true });
      throw error;
    }
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
      '--log-level', this.options.logLevel ?? 'debug',
      ...(node.metricsPort === null ? [] : ['--listen-metrics-urls', `http://127.0.0.1:${node.metricsPort}`]),
      ...(this.options.faultInjection ? ['--experimental-fault-injection'] : []),
      ...this.extraArgs,
    ];
    const log = openSync(node.logPath, 'a');
    const exitWithParent = this.options.exitWithParent === true;
    node.proc = spawn(process.execPath, args, {
      stdio: [exitWithParent ? 'pipe' : 'ignore', log, log],
      env: exitWithParent ? { ...process.env, TESSERA_EXIT_WITH_PARENT: '1' } : process.env,
    });
    node.paused = false;
  }

  /** Starts a stopped node again without waiting for it to serve (it may be cut off by a fault). */
  launch(i: number): void {
    if (this.nodes[i].proc) throw new Error(`node ${this.nodes[i].name} is already running`);
    this.spawnNode(i);
  }

  isRunning(i: number): boolean {
    return this.nodes[i].proc !== null;
  }

  /** SIGSTOP: the process freezes with its sockets open, as a long GC pause or a stalled VM would. */
  pause(i: number): void {
    const node = this.nodes[i];
    if (!node.proc || node.paused) return;
    node.proc.kill('SIGSTOP');
    node.paused = true;
  }

  /** SIGCONT after pause(). */
  resume(i: number): void {
    const node = this.nodes[i];
    if (!node.proc || !node.paused) return;
    node.proc.kill('SIGCONT');
    node.paused = false;
  }

  /** `http://127.0.0.1:<metrics port>` of node i (requires the `metrics` or `faultInjection` option). */
  metricsUrl(i: number): string {
    const port = this.nodes[i].metricsPort;
    if (port === null) throw new Error('the cluster was started without metrics ports');
    return `http://127.0.0.1:${port}`;
  }

  /**
   * Waits until every running node answers a linearizable read. Fails at once, with the end of
   * its log, if one of them exits on its own meanwhile (a crash at startup).
   */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const running = this.nodes.map((n, i) => (n.proc ? i : -1)).filter((i) => i >= 0);
    const cleanup: (() => void)[] = [];
    const died = new Promise<never>((_, reject) => {
      for (const i of running) {
        const proc = this.nodes[i].proc!;
        const listener = (code: number | null, signal: string | null) => {
          if (this.nodes[i].proc !== proc) return; // killed on purpose
          const tail = this.log(i).split('\n').slice(-5).join('\n');
          reject(new Error(`${this.nodes[i].name} exited (code ${code}, signal ${signal}) before serving; log ends:\n${tail}`));
        };
        proc.once('exit', listener);
        cleanup.push(() => proc.off('exit', listener));
      }
    });
    try {
      await Promise.race([Promise.all(running.map((i) => probeEndpoint(this.endpoint(i), timeoutMs))), died]);
    } finally {
      cleanup.forEach((off) => off());
    }
  }

  kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.nodes[i].proc;
    const paused = this.nodes[i].paused;
    this.nodes[i].proc = null;
    this.nodes[i].paused = false;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(signal);
      // A stopped process acts on SIGTERM/SIGINT only once continued (SIGKILL needs no help).
      if (paused && signal !== 'SIGKILL') proc.kill('SIGCONT');
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
