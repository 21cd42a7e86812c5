// Shared fixtures for the security tests: one set of openssl-made certificates per test file (a
// cluster CA with node, client and expired certificates, and a rogue CA with its own), TLS
// material for in-process servers, and a secure real-process cluster.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeEndpoint } from '../../src/cli/index.ts';
import type { ProbeTls } from '../../src/cli/index.ts';
import { addKeyToFile, generateCa, generateDevCertificates, issueCertificate, LOOPBACK_SANS } from '../../src/security/index.ts';
import type { CertPair, DevCertificates } from '../../src/security/index.ts';
import { freePort } from '../support/cluster.ts';

export const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
export const hasEtcdctl = spawnSync('etcdctl', ['version'], { encoding: 'utf8' }).status === 0;
export const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface Fixtures {
  dir: string;
  /** The cluster CA with node1..node4, client (CN tessera-dev-client). */
  certs: DevCertificates;
  /** Signed by the cluster CA but expired (2020). */
  expired: CertPair;
  /** A second CA nobody trusts, and a node/client certificate from it (same names and SANs). */
  rogueCa: CertPair;
  rogue: CertPair;
  /** Signed by the cluster CA, CN "intruder" (for the allowed-CN check). */
  intruder: CertPair;
  encryptionKeyFile: string;
  read(pair: CertPair): { cert: Buffer; key: Buffer };
  ca(): Buffer;
  cleanup(): void;
}

export function makeFixtures(): Fixtures {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-security-'));
  const certs = generateDevCertificates(join(dir, 'certs'), ['node1', 'node2', 'node3', 'node4']);
  const expired = issueCertificate(certs.ca, join(dir, 'certs'), 'expired', { cn: 'expired', sans: LOOPBACK_SANS, usage: 'server+client', expired: true });
  const intruder = issueCertificate(certs.ca, join(dir, 'certs'), 'intruder', { cn: 'intruder', sans: LOOPBACK_SANS, usage: 'server+client' });
  const rogueCa = generateCa(join(dir, 'rogue'), { cn: 'tessera-dev-ca' });
  const rogue = issueCertificate(rogueCa, join(dir, 'rogue'), 'node4', { cn: 'node4', sans: LOOPBACK_SANS, usage: 'server+client' });
  const encryptionKeyFile = join(dir, 'encryption.key');
  addKeyToFile(encryptionKeyFile, 'test-1');
  return {
    dir,
    certs,
    expired,
    rogueCa,
    rogue,
    intruder,
    encryptionKeyFile,
    read: (pair) => ({ cert: readFileSync(pair.certFile), key: readFileSync(pair.keyFile) }),
    ca: () => readFileSync(certs.ca.certFile),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface SecureNode {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logPath: string;
  proc: ChildProcess | null;
}

/** A `tessera start` cluster with TLS + mutual TLS on both ports and encryption at rest. */
export class SecureCluster {
  private constructor(
    readonly fixtures: Fixtures,
    readonly root: string,
    readonly nodes: SecureNode[],
  ) {}

  static async start(fixtures: Fixtures, count = 3): Promise<SecureCluster> {
    const root = mkdtempSync(join(tmpdir(), 'tessera-secure-cluster-'));
    const nodes: SecureNode[] = [];
    for (let i = 0; i < count; i++) {
      const name = `node${i + 1}`;
      nodes.push({ name, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(root, name), logPath: join(root, `${name}.log`), proc: null });
    }
    const cluster = new SecureCluster(fixtures, root, nodes);
    for (let i = 0; i < count; i++) cluster.spawn(i);
    await cluster.waitReady();
    return cluster;
  }

  get initialCluster(): string {
    return this.nodes.map((n) => `${n.name}=https://127.0.0.1:${n.peerPort}`).join(',');
  }

  endpoint(i: number): string {
    return `127.0.0.1:${this.nodes[i].clientPort}`;
  }

  urls(): string[] {
    return this.nodes.map((_, i) => `https://${this.endpoint(i)}`);
  }

  probeTls(): ProbeTls {
    const { certs } = this.fixtures;
    return { caFile: certs.ca.certFile, certFile: certs.client.certFile, keyFile: certs.client.keyFile, serverName: 'localhost' };
  }

  /** Flags of node `name` with certificate `pair` (the cluster's own unless a test swaps it). */
  static secureArgs(fixtures: Fixtures, pair: CertPair, withKey = true): string[] {
    const ca = fixtures.certs.ca.certFile;
    return [
      '--cert-file', pair.certFile, '--key-file', pair.keyFile, '--trusted-ca-file', ca, '--client-cert-auth',
      '--peer-cert-file', pair.certFile, '--peer-key-file', pair.keyFile, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth',
      ...(withKey ? ['--encryption-key-file', fixtures.encryptionKeyFile] : []),
    ];
  }

  spawn(i: number): void {
    const node = this.nodes[i];
    const pair = this.fixtures.certs.nodes.get(node.name);
    if (!pair) throw new Error(`no certificate for ${node.name}`);
    node.proc = spawnNode([
      '--name', node.name, '--data-dir', node.dataDir,
      '--listen-client-urls', `https://127.0.0.1:${node.clientPort}`,
      '--listen-peer-urls', `https://127.0.0.1:${node.peerPort}`,
      '--initial-cluster', this.initialCluster, '--log-level', 'debug',
      ...SecureCluster.secureArgs(this.fixtures, pair),
    ], node.logPath);
  }

  async waitReady(timeoutMs = 40_000): Promise<void> {
    await Promise.all(this.nodes.map((n, i) => (n.proc ? probeEndpoint(this.endpoint(i), timeoutMs, this.probeTls()) : null)));
  }

  log(i: number): string {
    try {
      return readFileSync(this.nodes[i].logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async kill(i: number): Promise<void> {
    const proc = this.nodes[i].proc;
    this.nodes[i].proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** `tessera start <args>` with output to `logPath`. */
export function spawnNode(args: string[], logPath: string): ChildProcess {
  const log = openSync(logPath, 'a');
  return spawn(process.execPath, ['--import', 'tsx', cli, 'start', ...args], { stdio: ['ignore', log, log] });
}

/** Every byte of every file in a node's LMDB environment. */
export function lmdbBytes(dataDir: string): Buffer {
  return Buffer.concat(['data.mdb', 'lock.mdb'].map((name) => {
    try {
      return readFileSync(join(dataDir, 'db', name));
    } catch {
      return Buffer.alloc(0);
    }
  }));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
