// The `tessera` command line: `tessera start` runs one node, `tessera dev` a local cluster.
import { Command, Option } from 'commander';
import { registerBenchCommand } from '../bench/index.ts';
import { runDev } from './dev.ts';
import { runRestore, runStart } from './start.ts';
import { registerStorageCommands } from './storage.ts';

const program = new Command();
program
  .name('tessera')
  .description('Tessera: a distributed key-value and coordination service that speaks the etcd v3 API.')
  .showHelpAfterError('(run with --help for usage)');

program
  .command('start')
  .description('Run one Tessera node. Flags follow etcd (--name, --data-dir, --initial-cluster, ...).')
  .option('--config-file <path>', 'YAML file with the same settings (flag names or camelCase keys); flags win')
  .option('--name <name>', 'human-readable name of this member', undefined)
  .option('--data-dir <dir>', 'where the node keeps its data (default: <name>.tessera)')
  .option('--listen-client-urls <urls>', 'URLs to serve clients on (default http://127.0.0.1:2379)')
  .option('--advertise-client-urls <urls>', 'client URLs to tell the rest of the cluster')
  .option('--listen-peer-urls <urls>', 'URLs to serve peers on (default http://127.0.0.1:2380)')
  .option('--initial-advertise-peer-urls <urls>', 'peer URLs to advertise to the rest of the cluster')
  .option('--listen-metrics-urls <urls>', 'URL for /metrics (Prometheus) and /health; https:// serves them with --cert-file/--key-file (and its client-certificate rules)')
  .option('--experimental-fault-injection', 'serve POST /debug/faults on the metrics URL (chaos testing only)')
  .addOption(new Option('--experimental-grpc-server <impl>', 'client gRPC server: lean (node:http2, hand-written codecs; default) or grpc-js').choices(['grpc-js', 'lean']))
  .option('--initial-cluster <spec>', 'initial members: name=http://host:port,...')
  .addOption(new Option('--initial-cluster-state <state>', 'new: bootstrap; existing: join').choices(['new', 'existing']))
  .option('--initial-cluster-token <token>', 'distinguishes clusters bootstrapped with the same member URLs')
  .option('--heartbeat-interval <ms>', 'milliseconds per heartbeat (one Raft tick)', toInt)
  .option('--election-timeout <ms>', 'milliseconds without a leader before an election', toInt)
  .option('--unsafe-no-fsync', 'do not fsync (faster; acknowledged writes can be lost on power failure)')
  .option('--quota-backend-bytes <n>', 'raise the NOSPACE alarm past this data size; then only reads and deletes succeed (default 2 GiB)', toInt)
  .addOption(new Option('--read-mode <mode>', 'linearizable reads: safe (ReadIndex) or lease (leader lease)').choices(['safe', 'lease']))
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
  .option('--max-request-bytes <n>', 'largest client request in bytes (default 1.5 MiB)', toInt)
  .option('--max-txn-ops <n>', 'most operations in one txn (default 128)', toInt)
  .option('--snapshot-count <n>', 'applied requests between state-machine snapshots (default 100000, as etcd 3.4; a state over 16 MiB also waits until the log since the last snapshot is as large)', toInt)
  .option('--snapshot-catchup-entries <n>', 'log entries kept behind a snapshot for slow followers (default 5000)', toInt)
  // Security (etcd's names; see docs/SECURITY.md). https:// URLs turn TLS on.
  .option('--cert-file <path>', 'client TLS certificate (served on https:// client URLs)')
  .option('--key-file <path>', 'client TLS key')
  .option('--client-cert-auth', 'require client certificates signed by --trusted-ca-file')
  .option('--trusted-ca-file <path>', 'CA bundle for client certificates (given alone, client certificates are required too, as in etcd)')
  .option('--peer-cert-file <path>', 'peer TLS certificate (served on https:// peer URLs and presented when dialling peers)')
  .option('--peer-key-file <path>', 'peer TLS key')
  .option('--peer-client-cert-auth', 'require peer certificates signed by --peer-trusted-ca-file')
  .option('--peer-trusted-ca-file <path>', 'CA bundle for peer certificates')
  .option('--peer-cert-allowed-cn <cn>', 'accept peer certificates only with this common name')
  .option('--peer-cert-allowed-hostname <name>', 'accept peer certificates only if valid for this host name or IP')
  .addOption(new Option('--tls-min-version <version>', 'lowest TLS version accepted (default TLS1.2)').choices(['TLS1.2', 'TLS1.3']))
  .option('--tls-reload-interval-ms <ms>', 'how often certificate, JWT key and encryption key files are checked for changes; 0: only on SIGHUP (default 5000)', toInt)
  .option('--encryption-key-file <path>', 'encrypt data at rest with the newest key of this file (lines id:base64, mode 0600)')
  .option('--auth-token-ttl <seconds>', 'seconds a simple auth token lives after its last use (default 300)', toInt)
  .option(
    '--auth-token <spec>',
    'auth token kind: simple (default; tokens valid on the issuing node only) or ' +
      'jwt,pub-key=<path>,priv-key=<path>,sign-method=<RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA|HS256|HS384|HS512>[,ttl=<duration, default 5m>] ' +
      '(signed tokens valid on every node with the same keys; pub-key alone = verify only; HS*: priv-key is the shared secret, >= 32 bytes; key files reloaded on change and SIGHUP)',
  )
  .action(async (options: Record<string, unknown>) => runStart(options));

const snapshot = program.command('snapshot').description('Backups: `etcdctl snapshot save` makes them; restore starts a cluster from one.');
snapshot
  .command('restore <file>')
  .description('Create a new data directory from a backup file; then `tessera start` with the same flags.')
  .requiredOption('--data-dir <dir>', 'the new (empty) data directory')
  .option('--name <name>', 'this member\'s name', 'default')
  .option('--initial-cluster <spec>', 'the restored cluster\'s members: name=http://host:port,...')
  .option('--initial-advertise-peer-urls <urls>', 'this member\'s peer URLs')
  .option('--initial-cluster-token <token>', 'token of the restored cluster')
  .option('--encryption-key-file <file>', 'seal the restored data at rest under this key file (the one the node will start with)')
  .action(async (file: string, options: Record<string, unknown>) => runRestore(file, options));

program
  .command('dev')
  .description('Start a local cluster of child processes on loopback and print its endpoints. Ctrl-C stops it.')
  .option('--nodes <n>', 'number of nodes', toInt, 3)
  .option('--data-dir <dir>', 'directory holding every node\'s data; reuse it to recover the data (default .tessera/dev, or .tessera/dev-secure with --secure)')
  .option('--port <port>', 'client port of the first node; others use +20000, +30000 (peer port = client port + 1)', toInt, 2379)
  .option('--unsafe-no-fsync', 'do not fsync (faster, loses acknowledged writes on power failure)')
  .option('--secure', 'TLS and mutual TLS on client and peer ports, encryption at rest; makes a throwaway CA and certificates with openssl and prints the etcdctl flags')
  .addOption(new Option('--experimental-grpc-server <impl>', 'client gRPC server of every node (passed on as TESSERA_GRPC_SERVER)').choices(['grpc-js', 'lean']))
  .action(async (options: { nodes: number; dataDir?: string; port: number; unsafeNoFsync?: boolean; secure?: boolean; experimentalGrpcServer?: string }) => {
    // The nodes inherit this process's environment; ApiServer reads it when no flag is given.
    if (options.experimentalGrpcServer !== undefined) process.env.TESSERA_GRPC_SERVER = options.experimentalGrpcServer;
    return runDev(options);
  });
registerStorageCommands(program);
registerBenchCommand(program);

function toInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got "${value}"`);
  return n;
}

await program.parseAsync(process.argv);
