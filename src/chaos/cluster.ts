// Real-process clusters for tests: `tessera start` children on loopback, each with its own data
// directory in a temp folder; kill (SIGKILL), pause (SIGSTOP/SIGCONT), restart, replace a node by a
// new member on a wiped data directory; logs kept for failure reports, exits nobody asked for
// recorded. Optionally a metrics/control port per node (fault injection for chaos tests).
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
  /** The slot's name (log file, data directory); the first member in this slot has it as its name. */
  name: string;
  /** `--name` of the member now in this slot (`n2`, then `n2-r1`, ... after each replacement). */
  memberName: string;
  /** Replacements so far: the slot's member was removed and a new one added on a wiped directory. */
  generation: number;
  /** Start with `--initial-cluster-state existing` (a member added to a running cluster). */
  joinExisting: boolean;
  /** The current process may exit on its own (a fault that makes it fail-stop, a removal). */
  exitExpected: boolean;
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
  /** Extra environment for every node (e.g. TESSERA_PLANTED_BUG for harness self-tests). */
  env?: Record<string, string>;
  /** The CLI the nodes run: a bundled tessera.mjs (scripts/build.mjs); default the sources through tsx. */
  cli?: string;
}

/** A node process that exited although nobody killed it and no fault was expected to stop it. */
export interface UnexpectedExit {
  name: string;
  code: number | null;
  signal: string | null;
  /** The last lines of the node's log at the time. */
  logTail: string;
}

/** A free port not yet in `taken` (which it joins). */
async function distinctFreePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
}

export class ProcessCluster {
  readonly root: string;
  readonly nodes: ClusterNode[];
  readonly unexpectedExits: UnexpectedExit[] = [];
  private readonly extraArgs: string[];
  private readonly options: ProcessClusterOptions;
  /** Every port this cluster has used (the OS may hand the same free port out twice in a row). */
  private readonly takenPorts: Set<number>;

  private constructor(root: string, nodes: ClusterNode[], options: ProcessClusterOptions, takenPorts: Set<number>) {
    this.root = root;
    this.nodes = nodes;
    this.extraArgs = options.extraArgs ?? [];
    this.options = options;
    this.takenPorts = takenPorts;
  }

  static async start(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const count = options.nodes ?? 3;
    const root = options.root ?? mkdtempSync(join(tmpdir(), 'tessera-cluster-'));
    mkdirSync(root, { recursive: true });
    const withMetrics = options.metrics === true || options.faultInjection === true;
    const nodes: ClusterNode[] = [];
    const taken = new Set<number>();
    const port = () => distinctFreePort(taken);
    for (let i = 0; i < count; i++) {
      const name = `n${i + 1}`;
      nodes.push({
        name,
        memberName: name,
        generation: 0,
        joinExisting: false,
        exitExpected: false,
        clientPort: await port(),
        peerPort: await port(),
        dataDir: join(root, name),
        logPath: join(root, `${name}.log`),
        metricsPort: withMetrics ? await port() : null,
        proc: null,
        paused: false,
      });
    }
    const cluster = new ProcessCluster(root, nodes, options, taken);
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

  /** `http://127.0.0.1:<peer port>` of node i's current member. */
  peerUrl(i: number): string {
    return `http://127.0.0.1:${this.nodes[i].peerPort}`;
  }

  private spawnNode(i: number): void {
    const node = this.nodes[i];
    const initialCluster = this.nodes.map((n, j) => `${n.memberName}=${this.peerUrl(j)}`).join(',');
    const args = [
      ...(this.options.cli === undefined ? ['--import', 'tsx', cli] : [this.options.cli]), 'start',
      '--name', node.memberName,
      '--data-dir', node.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${node.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${node.peerPort}`,
      '--initial-cluster', initialCluster,
      ...(node.joinExisting ? ['--initial-cluster-state', 'existing'] : []),
      '--log-level', this.options.logLevel ?? 'debug',
      ...(node.metricsPort === null ? [] : ['--listen-metrics-urls', `http://127.0.0.1:${node.metricsPort}`]),
      ...(this.options.faultInjection ? ['--experimental-fault-injection'] : []),
      ...this.extraArgs,
    ];
    const log = openSync(node.logPath, 'a');
    const exitWithParent = this.options.exitWithParent === true;
    const proc = spawn(process.execPath, args, {
      stdio: [exitWithParent ? 'pipe' : 'ignore', log, log],
      env: { ...process.env, ...this.options.env, ...(exitWithParent ? { TESSERA_EXIT_WITH_PARENT: '1' } : {}) },
    });
    node.proc = proc;
    node.paused = false;
    node.exitExpected = false;
    proc.once('exit', (code, signal) => {
      if (node.proc !== proc || node.exitExpected) return; // killed on purpose, or a fault stopped it
      const logTail = this.log(i).split('\n').slice(-6).join('\n');
      this.unexpectedExits.push({ name: node.memberName, code, signal, logTail });
    });
  }

  /** Starts a stopped (or exited) node again without waiting for it to serve (it may be cut off by a fault). */
  launch(i: number): void {
    if (this.isAlive(i)) throw new Error(`node ${this.nodes[i].name} is already running`);
    this.spawnNode(i);
  }

  /** The node has a process (started, not killed by us); it may have exited on its own since. */
  isRunning(i: number): boolean {
    return this.nodes[i].proc !== null;
  }

  /** The node has a process that has not exited. */
  isAlive(i: number): boolean {
    const proc = this.nodes[i].proc;
    return proc !== null && proc.exitCode === null && proc.signalCode === null;
  }

  /** The current process of node i may exit on its own (an injected fault is meant to stop it). */
  expectExit(i: number, expected = true): void {
    this.nodes[i].exitExpected = expected;
  }

  /** Whether node i answers a linearizable read within `timeoutMs`. */
  async waitServing(i: number, timeoutMs: number): Promise<boolean> {
    try {
      await probeEndpoint(this.endpoint(i), timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Resolves to the exit code and signal of node i's process once it exits, or null if it is
   * still running after `timeoutMs` (or has no process).
   */
  waitExit(i: number, timeoutMs: number): Promise<{ code: number | null; signal: string | null } | null> {
    const proc = this.nodes[i].proc;
    if (proc === null) return Promise.resolve(null);
    if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        proc.off('exit', onExit);
        resolve(null);
      }, timeoutMs);
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        resolve({ code, signal });
      };
      proc.once('exit', onExit);
    });
  }

  /**
   * Turns stopped node i into a new member-to-be, as an operator replacing a machine would: its
   * data directory is wiped, it gets a new peer URL (a removed member ID is never re-added, and
   * IDs derive from peer URLs) and name, and its next launch joins with
   * `--initial-cluster-state existing`. Add it (Cluster.MemberAdd of peerUrl(i)) before launching it.
   */
  async prepareReplacement(i: number): Promise<{ name: string; peerUrl: string }> {
    const node = this.nodes[i];
    if (this.isAlive(i)) throw new Error(`node ${node.name} must be stopped before it is replaced`);
    node.proc = null;
    node.paused = false;
    rmSync(node.dataDir, { recursive: true, force: true });
    node.peerPort = await distinctFreePort(this.takenPorts);
    node.generation++;
    node.memberName = `${node.name}-r${node.generation}`;
    node.joinExisting = true;
    return { name: node.memberName, peerUrl: this.peerUrl(i) };
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
        if (proc.exitCode !== null || proc.signalCode !== null) listener(proc.exitCode, proc.signalCode);
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

  /** The log text written after `offset` characters (for what one incarnation wrote). */
  logSince(i: number, offset: number): string {
    return this.log(i).slice(offset);
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
