// A node's configuration: one validated object, from CLI flags (etcd's names) and/or a YAML file.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseAuthTokenSpec, SecurityError } from '../security/index.ts';

/** Every bound in one place. Past each one the caller gets a clear error (see docs/ARCHITECTURE.md). */
export const LimitsSchema = z.object({
  /** Largest client request, like etcd's --max-request-bytes. */
  maxRequestBytes: z.number().int().positive().default(1.5 * 1024 * 1024),
  /** Ops in one Txn, like etcd's --max-txn-ops. */
  maxTxnOps: z.number().int().positive().default(128),
  /** Proposals waiting for apply on this node; past it: "etcdserver: too many requests". */
  maxPendingProposals: z.number().int().positive().default(20_000),
  /** Linearizable reads waiting for a ReadIndex; past it: "etcdserver: too many requests". */
  maxPendingReads: z.number().int().positive().default(20_000),
  /** Client commands packed into one Raft entry. */
  maxCommandsPerEntry: z.number().int().positive().default(512),
  /** Bytes of client commands packed into one Raft entry. */
  maxEntryBytes: z.number().int().positive().default(2 * 1024 * 1024),
  /** Time a request waits for its proposal to apply before "etcdserver: request timed out". */
  requestTimeoutMs: z.number().int().positive().default(7_000),
  /** Applied entries between two state-machine snapshots (etcd's --snapshot-count). */
  snapshotCount: z.number().int().positive().default(100_000),
  /**
   * From a last snapshot of this many bytes of keys and values on (history included, before
   * compression), the next one also waits until the log applied since holds as many bytes
   * (Replica.wantsSnapshot): a large state is not rewritten every snapshotCount writes.
   */
  snapshotAmortizeFromBytes: z.number().int().nonnegative().default(16 * 1024 * 1024),
  /** Entries kept behind a snapshot so a slightly lagging follower catches up from the log. */
  snapshotCatchupEntries: z.number().int().nonnegative().default(5_000),
  /**
   * MVCC chunks (each up to 256 KiB before compression) a snapshot encodes per loop turn: a big
   * state is snapshotted over many turns while the node keeps serving (src/server/snapshots.ts).
   */
  snapshotChunksPerTurn: z.number().int().positive().default(1),
});
export type Limits = z.infer<typeof LimitsSchema>;

/** TLS and encryption at rest, with etcd's flag names (docs/SECURITY.md). Checked by checkSecurityConfig. */
const SecurityConfigShape = {
  /** Client TLS: certificate and key served on https:// client URLs. */
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  /** Require client certificates signed by --trusted-ca-file (etcd also requires them when only the CA file is given). */
  clientCertAuth: z.boolean().default(false),
  trustedCaFile: z.string().min(1).optional(),
  /** Peer TLS: used to serve https:// peer URLs and, as a client certificate, to dial peers. */
  peerCertFile: z.string().min(1).optional(),
  peerKeyFile: z.string().min(1).optional(),
  peerClientCertAuth: z.boolean().default(false),
  peerTrustedCaFile: z.string().min(1).optional(),
  /** Accept peer certificates only with this subject CN (etcd's --peer-cert-allowed-cn). */
  peerCertAllowedCn: z.string().min(1).optional(),
  /** Accept peer certificates only if valid for this host name or IP (etcd's --peer-cert-allowed-hostname). */
  peerCertAllowedHostname: z.string().min(1).optional(),
  /** Lowest TLS version on client and peer ports (etcd 3.5's --tls-min-version). */
  tlsMinVersion: z.enum(['TLS1.2', 'TLS1.3']).default('TLS1.2'),
  /** Milliseconds between checks of the certificate files for changes (0: only on SIGHUP). */
  tlsReloadIntervalMs: z.number().int().nonnegative().default(5_000),
  /** Encryption at rest: key file (`id:base64` lines, the last one seals new data). */
  encryptionKeyFile: z.string().min(1).optional(),
  /** etcd's --auth-token-ttl: seconds a simple token lives after its last use. */
  authTokenTtl: z.number().int().positive().default(300),
  /**
   * etcd's --auth-token: `simple` (node-local random tokens) or
   * `jwt,pub-key=<path>,priv-key=<path>,sign-method=<RS256|…|EdDSA|HS256|HS384|HS512>[,ttl=5m]` (docs/SECURITY.md; for HS* priv-key is the shared secret).
   */
  authToken: z.string().min(1).default('simple'),
};

/** Rules across security flags that zod's per-field checks cannot express. */
function checkSecurityConfig(config: z.output<typeof NodeConfigSchema>): string[] {
  const problems: string[] = [];
  const pair = (cert: string | undefined, key: string | undefined, prefix: string) => {
    if ((cert === undefined) !== (key === undefined)) problems.push(`--${prefix}cert-file and --${prefix}key-file go together`);
  };
  pair(config.certFile, config.keyFile, '');
  pair(config.peerCertFile, config.peerKeyFile, 'peer-');
  if (config.clientCertAuth && config.trustedCaFile === undefined) problems.push('--client-cert-auth needs --trusted-ca-file');
  if (config.peerClientCertAuth && config.peerTrustedCaFile === undefined) problems.push('--peer-client-cert-auth needs --peer-trusted-ca-file');
  const httpsClient = config.listenClientUrls.some((u) => u.startsWith('https://'));
  const httpsPeer = config.listenPeerUrls.some((u) => u.startsWith('https://'));
  if (httpsClient && config.certFile === undefined) problems.push('https:// client URLs need --cert-file and --key-file');
  if (httpsPeer && config.peerCertFile === undefined) problems.push('https:// peer URLs need --peer-cert-file and --peer-key-file');
  const httpsMetrics = (config.listenMetricsUrls ?? []).some((u) => u.startsWith('https://'));
  if (httpsMetrics && config.certFile === undefined) problems.push('https:// metrics URLs need --cert-file and --key-file (they serve the client certificate, as etcd)');
  try {
    parseAuthTokenSpec(config.authToken);
  } catch (error) {
    if (!(error instanceof SecurityError)) throw error;
    problems.push(error.message);
  }
  if (config.peerCertAllowedCn !== undefined && config.peerCertAllowedHostname !== undefined) {
    problems.push('set --peer-cert-allowed-cn or --peer-cert-allowed-hostname, not both');
  }
  const peerCertsVerified = config.peerClientCertAuth || config.peerTrustedCaFile !== undefined;
  if ((config.peerCertAllowedCn ?? config.peerCertAllowedHostname) !== undefined && !peerCertsVerified) {
    problems.push('--peer-cert-allowed-cn/-hostname need --peer-client-cert-auth and --peer-trusted-ca-file');
  }
  return problems;
}

/** A comma-separated flag value or a YAML list. */
const urlList = z.union([
  z.string().transform((s) => s.split(',').map((u) => u.trim()).filter((u) => u.length > 0)),
  z.array(z.string()),
]);

export const NodeConfigSchema = z.object({
  name: z.string().min(1).default('default'),
  dataDir: z.string().min(1).optional(),
  listenClientUrls: urlList.default(['http://127.0.0.1:2379']),
  advertiseClientUrls: urlList.optional(),
  listenPeerUrls: urlList.default(['http://127.0.0.1:2380']),
  initialAdvertisePeerUrls: urlList.optional(),
  /** `name=peerURL,name=peerURL`, as etcd's --initial-cluster. */
  initialCluster: z.string().optional(),
  /** HTTP for /metrics and /health (etcd's --listen-metrics-urls). */
  listenMetricsUrls: urlList.optional(),
  /** Serve POST /debug/faults on the metrics URL (chaos tests only: it can partition the node). */
  experimentalFaultInjection: z.boolean().default(false),
  /** The client gRPC server: the lean node:http2 one (src/api/lean-server.ts) or grpc-js; unset = ApiServer's default (lean). */
  experimentalGrpcServer: z.enum(['grpc-js', 'lean']).optional(),
  initialClusterState: z.enum(['new', 'existing']).default('new'),
  initialClusterToken: z.string().default('tessera-cluster'),
  /** Milliseconds per Raft tick (etcd's --heartbeat-interval). */
  heartbeatInterval: z.number().int().positive().default(100),
  /** Milliseconds without a leader before an election (etcd's --election-timeout). */
  electionTimeout: z.number().int().positive().default(1000),
  /** fsync every commit; turning it off loses acknowledged writes on power loss. */
  unsafeNoFsync: z.boolean().default(false),
  /** Raise the NOSPACE alarm when the data file grows past this (etcd's --quota-backend-bytes, default 2 GiB). */
  quotaBackendBytes: z.number().int().positive().default(2 * 1024 ** 3),
  /** `safe` = ReadIndex with a quorum round; `lease` = leader lease (needs CheckQuorum, bounded clock drift). */
  readMode: z.enum(['safe', 'lease']).default('safe'),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
  ...SecurityConfigShape,
});
export type NodeConfigInput = z.input<typeof NodeConfigSchema>;
export type NodeConfig = z.output<typeof NodeConfigSchema> & { dataDir: string };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validates raw options (flags merged over a YAML file) and fills defaults. */
export function parseNodeConfig(input: Record<string, unknown>): NodeConfig {
  const result = NodeConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  --${toFlag(i.path.join('.'))}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const config = result.data;
  const problems = checkSecurityConfig(config);
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return { ...config, dataDir: config.dataDir ?? `${config.name}.tessera` };
}

/** Reads a YAML config file whose keys are etcd's flag names (`data-dir`) or camelCase. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  const raw: unknown = parseYaml(text);
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config file ${path} must hold a mapping`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) out[toCamel(key)] = value;
  return out;
}

function toCamel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function toFlag(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export interface HostPort {
  host: string;
  port: number;
}

/** `http://127.0.0.1:2379` → { host, port }. Only http/https URLs carry meaning here, like etcd. */
export function parseHostPort(url: string): HostPort {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`not a URL: ${url} (expected e.g. http://127.0.0.1:2379)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(`unsupported scheme in ${url}: use http:// or https://`);
  }
  const port = Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port };
}
