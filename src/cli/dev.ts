// `tessera dev`: a local cluster of child processes on loopback. Waits until every node answers a
// linearizable read, prints one `ready: endpoints=...` line, and stops every node on Ctrl-C.
// With --secure: TLS and mutual TLS on both ports with throwaway openssl-made certificates under
// the data directory, encryption at rest, and the etcdctl flags to use printed before `ready:`.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addKeyToFile, generateDevCertificates, SecurityError } from '../security/index.ts';
import type { DevCertificates } from '../security/index.ts';
import { probeEndpoint } from './probe.ts';
import type { ProbeTls } from './probe.ts';

export interface DevOptions {
  nodes: number;
  /** Default `.tessera/dev`, or `.tessera/dev-secure` with `secure` (the two never share data). */
  dataDir?: string;
  port: number;
  unsafeNoFsync?: boolean;
  /** TLS + mutual TLS for clients and peers, encryption at rest, generated certificates. */
  secure?: boolean;
}

/** What --secure adds: certificates and the encryption key file. */
interface DevSecurity {
  certs: DevCertificates;
  encryptionKeyFile: string;
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
  const dataDir = resolve(options.dataDir ?? (options.secure ? '.tessera/dev-secure' : '.tessera/dev'));
  let security: DevSecurity | null = null;
  if (options.secure) {
    try {
      security = prepareSecurity(dataDir, options.nodes);
    } catch (error) {
      if (!(error instanceof SecurityError)) throw error;
      console.error(`tessera dev --secure: ${error.message}`);
      process.exit(2);
    }
  }
  const nodes = startNodes(options, dataDir, security);
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
  const probeTls: ProbeTls | undefined = security
    ? { caFile: security.certs.ca.certFile, certFile: security.certs.client.certFile, keyFile: security.certs.client.keyFile, serverName: 'localhost' }
    : undefined;
  try {
    await Promise.all(endpoints.map((e) => probeEndpoint(e, readyTimeoutMs, probeTls)));
  } catch (error) {
    console.error(`tessera dev: cluster not ready: ${(error as Error).message}`);
    stopAll(1);
    return;
  }
  console.log(`logs: ${nodes.map((n) => n.logPath).join(' ')}`);
  if (security === null) {
    console.log(`try: etcdctl --endpoints=${endpoints.join(',')} put foo bar`);
    console.log(`ready: endpoints=${endpoints.join(',')}`);
    return;
  }
  const urls = endpoints.map((e) => `https://${e}`).join(',');
  const { ca, client } = security.certs;
  const flags = `--endpoints=${urls} --cacert=${ca.certFile} --cert=${client.certFile} --key=${client.keyFile}`;
  console.log(`secure: TLS + mutual TLS on client and peer ports, encryption at rest (key file ${security.encryptionKeyFile})`);
  console.log(`secure: throwaway CA and certificates in ${security.certs.dir}; never use them outside development`);
  console.log(`etcdctl-flags: ${flags}`);
  console.log(`try: etcdctl ${flags} put foo bar`);
  console.log(`ready: endpoints=${urls}`);
}

/** Certificates (made once, reused while valid) and an encryption key, under `<dataDir>/certs`. */
function prepareSecurity(dataDir: string, nodeCount: number): DevSecurity {
  const dir = join(dataDir, 'certs');
  const certs = generateDevCertificates(dir, devNodeNames(nodeCount));
  const encryptionKeyFile = join(dir, 'encryption.key');
  if (!existsSync(encryptionKeyFile)) addKeyToFile(encryptionKeyFile, 'dev-1');
  return { certs, encryptionKeyFile };
}

/**
 * V8 flags for every node (a node started by hand gets them from NODE_OPTIONS: README, "Running a
 * node yourself"; docs/BENCHMARKS.md has the measurements):
 * - a 32 MiB young generation (Node's default is 16) halves how often the scavenger runs under
 *   load: cluster CPU per 10k puts 1.82-2.19 s without it, 1.69-1.72 s with it;
 * - scavenges on the main thread alone (`--no-parallel-scavenge`): the three nodes share the
 *   machine's cores, and V8's helper threads spent 1.4x the main thread's scavenge time to shorten
 *   its pause. Without them a client-facing node's scavenges cost 0.48 s of CPU per 8 s of 100-client
 *   puts instead of 0.33 s on the main thread plus 0.44 s on helpers; bench/ab.ts put runs measured
 *   cluster CPU per put B/A 0.84 and 0.92, and one client's p50 0.965 (8 of 10 slices).
 */
const NODE_V8_FLAGS = ['--max-semi-space-size=32', '--no-parallel-scavenge'];

function devNodeNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `node${i + 1}`);
}

/** The security flags of one dev node: its certificate on both ports, the CA, mutual TLS everywhere. */
function secureArgs(security: DevSecurity, name: string): string[] {
  const node = security.certs.nodes.get(name);
  if (node === undefined) throw new Error(`no certificate for ${name}`);
  const ca = security.certs.ca.certFile;
  return [
    '--cert-file', node.certFile, '--key-file', node.keyFile, '--trusted-ca-file', ca, '--client-cert-auth',
    '--peer-cert-file', node.certFile, '--peer-key-file', node.keyFile, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth',
    '--encryption-key-file', security.encryptionKeyFile,
  ];
}

function startNodes(options: DevOptions, dataDir: string, security: DevSecurity | null): DevNode[] {
  mkdirSync(dataDir, { recursive: true });
  const names = devNodeNames(options.nodes);
  const scheme = security === null ? 'http' : 'https';
  const peerUrl = (i: number) => `${scheme}://127.0.0.1:${devClientPort(options.port, i) + 1}`;
  const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(',');
  // Nodes run the way this process runs: the bundled JavaScript (dist/node) or the sources through tsx.
  const bundled = import.meta.url.endsWith('.mjs');
  const cli = bundled ? [fileURLToPath(import.meta.url)] : ['--import', 'tsx', fileURLToPath(new URL('./main.ts', import.meta.url))];
  return names.map((name, i) => {
    const clientPort = devClientPort(options.port, i);
    const args = [
      ...NODE_V8_FLAGS, ...cli, 'start',
      '--name', name,
      '--data-dir', join(dataDir, name),
      '--listen-client-urls', `${scheme}://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', peerUrl(i),
      '--initial-advertise-peer-urls', peerUrl(i),
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      ...(options.unsafeNoFsync ? ['--unsafe-no-fsync'] : []),
      ...(security === null ? [] : secureArgs(security, name)),
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
