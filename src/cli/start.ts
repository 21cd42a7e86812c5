// `tessera start`: one node in this process, configured by flags over an optional YAML file.
import pino from 'pino';
import { SecurityError } from '../security/index.ts';
import { StorageEncryptionError } from '../storage/index.ts';
import { ConfigError, parseNodeConfig, readConfigFile, restoreBackup, TesseraNode } from '../server/index.ts';
import { EtcdError } from '../util/index.ts';
import { TRACE_DIR_ENV, traceFromEnv } from './trace-sink.ts';

const limitFlags = ['maxRequestBytes', 'maxTxnOps', 'snapshotCount', 'snapshotCatchupEntries'] as const;

export async function runStart(options: Record<string, unknown>): Promise<void> {
  let node: TesseraNode | undefined;
  const logger = pino({ level: typeof options.logLevel === 'string' ? options.logLevel : 'info', base: { pid: process.pid } });
  try {
    const fromFile = typeof options.configFile === 'string' ? readConfigFile(options.configFile) : {};
    const flags: Record<string, unknown> = {};
    const limits: Record<string, unknown> = { ...((fromFile.limits as Record<string, unknown> | undefined) ?? {}) };
    for (const [key, value] of Object.entries(options)) {
      if (value === undefined || key === 'configFile') continue;
      if ((limitFlags as readonly string[]).includes(key)) limits[key] = value;
      else flags[key] = value;
    }
    const config = parseNodeConfig({ ...fromFile, ...flags, limits });
    const traceFile = traceFromEnv(config.name);
    if (traceFile !== null) logger.warn({ file: traceFile }, `${TRACE_DIR_ENV} is set: tracing every request hop (latency studies only)`);
    node = await TesseraNode.start(config, logger.child({ name: config.name }));
    node.onFatal = () => process.exit(1);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof SecurityError || error instanceof StorageEncryptionError) {
      console.error(`tessera: ${error.message}`);
      process.exit(2);
    }
    logger.fatal({ err: error }, 'failed to start');
    process.exit(1);
  }
  let stopping: Promise<void> | null = null;
  const shutdown = (signal: string) => {
    if (stopping) return;
    logger.info({ signal }, 'shutting down');
    stopping = (node?.stop() ?? Promise.resolve()).then(() => process.exit(0));
  };
  if (process.env.TESSERA_EXIT_WITH_PARENT === '1') {
    process.stdin.on('close', () => shutdown('parent exited'));
    process.stdin.resume();
  }
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  // As nginx and others do: SIGHUP reloads the TLS certificate files and the JWT key files (they are also polled).
  process.on('SIGHUP', () => node?.reloadCertificates());
}

export async function runRestore(file: string, options: Record<string, unknown>): Promise<void> {
  try {
    const flags = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    const result = await restoreBackup(file, parseNodeConfig(flags));
    console.log(`restored ${file} at raft index ${result.index} into ${result.dataDir} (${result.members} members)`);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof EtcdError) {
      console.error(`tessera: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
}
