// A node's security wiring: TLS for the client port, the metrics port and the peer port built from
// the configured files, reloaded when they change (or on SIGHUP), the allowed-peer-name check, the
// key ring for encryption at rest and the JWT keys of --auth-token jwt (reloaded the same way).
// node.ts asks this for options and hands it the servers to update.
import type * as tls from 'node:tls';
import type { Logger } from 'pino';
import {
  JwtTokenKeeper,
  TlsReloader,
  checkPeerName,
  clientTlsOptions,
  filesStamp,
  parseAuthTokenSpec,
  readKeyFile,
  serverTlsOptions,
} from '../security/index.ts';
import type { Keyring, TlsMaterial, TlsMinVersion } from '../security/index.ts';
import type { TransportTlsOptions } from '../transport/index.ts';
import type { NodeConfig } from './config.ts';

/** What a reload updates (ApiServer#setSecureContext, Transport#updateTls, the metrics server). */
export interface TlsTargets {
  api: { setSecureContext(options: tls.TlsOptions): void } | null;
  transport: { updateTls(options: TransportTlsOptions): void };
  metrics?: { setSecureContext(options: tls.TlsOptions): void } | null;
  /** Takes a reloaded encryption key ring (NodeStorage.setKeyring); throws to keep the current one. */
  storage?: { setKeyring(keyring: Keyring): void };
}

export class NodeSecurity {
  /** The key ring of --encryption-key-file as read at start (later versions go to storage on reload). */
  readonly keyring: Keyring | undefined;
  private keyFileStamp: string | null;
  private keyTimer: NodeJS.Timeout | null = null;
  private storageTarget: TlsTargets['storage'] | undefined;
  /** --auth-token jwt,...: the keys that sign and verify tokens; null for simple tokens. */
  readonly jwt: JwtTokenKeeper | null;
  private readonly client: TlsReloader | null;
  private readonly peer: TlsReloader | null;
  private readonly minVersion: TlsMinVersion;

  /** Reads the key file and the certificates now: a bad file fails the start with its name. */
  constructor(
    private readonly config: NodeConfig,
    private readonly logger: Logger,
  ) {
    this.minVersion = config.tlsMinVersion === 'TLS1.3' ? 'TLSv1.3' : 'TLSv1.2';
    this.keyFileStamp = config.encryptionKeyFile === undefined ? null : filesStamp([config.encryptionKeyFile]);
    this.keyring = config.encryptionKeyFile === undefined ? undefined : readKeyFile(config.encryptionKeyFile);
    const intervalMs = config.tlsReloadIntervalMs;
    const options = (label: string) => ({ label, minVersion: this.minVersion, intervalMs, logger });
    const httpsClient = config.listenClientUrls[0].startsWith('https://');
    const httpsPeer = config.listenPeerUrls[0].startsWith('https://');
    const httpsMetrics = config.listenMetricsUrls?.[0]?.startsWith('https://') === true;
    // As etcd: an https:// metrics URL serves with the client certificate (and its client-cert rules).
    this.client =
      (httpsClient || httpsMetrics) && config.certFile && config.keyFile
        ? new TlsReloader({ certFile: config.certFile, keyFile: config.keyFile, trustedCaFile: config.trustedCaFile }, options('client'))
        : null;
    this.peer =
      httpsPeer && config.peerCertFile && config.peerKeyFile
        ? new TlsReloader({ certFile: config.peerCertFile, keyFile: config.peerKeyFile, trustedCaFile: config.peerTrustedCaFile }, options('peer'))
        : null;
    if (!httpsClient && !httpsMetrics && config.certFile) logger.warn('--cert-file is set but the client URL is http://; serving plaintext (as etcd does)');
    if (!httpsPeer && config.peerCertFile) logger.warn('--peer-cert-file is set but the peer URL is http://; peers talk plaintext (as etcd does)');
    if (this.keyring) logger.info({ keys: this.keyring.ids, sealingKey: this.keyring.newest.id }, 'encryption at rest on');
    const tokens = parseAuthTokenSpec(config.authToken);
    this.jwt = tokens.kind === 'jwt' ? new JwtTokenKeeper(tokens, { logger, reloadIntervalMs: intervalMs }) : null;
    if (this.jwt !== null) {
      logger.info({ signMethod: this.jwt.signMethod, keyIds: this.jwt.keyIds, verifyOnly: this.jwt.verifyOnly }, 'auth tokens are JWTs');
    }
  }

  /** Options for the client port, or undefined for plaintext. */
  apiTls(): tls.TlsOptions | undefined {
    return this.client === null ? undefined : this.apiOptions(this.client.current);
  }

  /** Options for an https:// metrics URL (the client port's certificate and client rules), or undefined for http://. */
  metricsTls(): tls.TlsOptions | undefined {
    const https = this.config.listenMetricsUrls?.[0]?.startsWith('https://') === true;
    return https && this.client !== null ? this.apiOptions(this.client.current) : undefined;
  }

  /** Options for the peer transport, or undefined for plaintext. */
  transportTls(): TransportTlsOptions | undefined {
    return this.peer === null ? undefined : this.transportOptions(this.peer.current);
  }

  /** Swaps reloaded certificates into the running servers from now on; starts the file checks. */
  attach(targets: TlsTargets): void {
    this.client?.onReload((material) => {
      if (this.config.listenClientUrls[0].startsWith('https://')) targets.api?.setSecureContext(this.apiOptions(material));
      targets.metrics?.setSecureContext(this.apiOptions(material));
    });
    this.peer?.onReload((material) => targets.transport.updateTls(this.transportOptions(material)));
    this.client?.start();
    this.peer?.start();
    this.jwt?.start();
    this.storageTarget = targets.storage;
    const intervalMs = this.config.tlsReloadIntervalMs;
    if (this.keyFileStamp !== null && intervalMs > 0) {
      this.keyTimer = setInterval(() => this.checkKeyFile(), intervalMs);
      this.keyTimer.unref();
    }
  }

  /** Reloads every certificate file, the JWT key files and the encryption key file now (SIGHUP). */
  reload(): void {
    this.client?.reload();
    this.peer?.reload();
    this.jwt?.reload();
    this.reloadKeyFile();
  }

  close(): void {
    this.client?.stop();
    this.peer?.stop();
    this.jwt?.stop();
    if (this.keyTimer !== null) clearInterval(this.keyTimer);
  }

  /** Reloads the encryption key file if it changed since it was last read. */
  checkKeyFile(): void {
    const file = this.config.encryptionKeyFile;
    if (file !== undefined && filesStamp([file]) !== this.keyFileStamp) this.reloadKeyFile();
  }

  /**
   * Reads the encryption key file again and hands its key ring to storage: new writes are then
   * sealed under its newest key (a key rotation without a restart). A file that does not parse, or
   * that lacks a key the data directory needs, keeps the current keys (logged).
   */
  private reloadKeyFile(): void {
    const file = this.config.encryptionKeyFile;
    if (file === undefined || this.storageTarget === undefined) return;
    this.keyFileStamp = filesStamp([file]);
    try {
      const keyring = readKeyFile(file);
      this.storageTarget.setKeyring(keyring);
      this.logger.info({ event: 'encryption_keys_reloaded', keys: keyring.ids, sealingKey: keyring.newest.id }, 'security: encryption key file reloaded');
    } catch (error) {
      this.logger.error(
        { event: 'encryption_key_reload_failed', reason: (error as Error).message },
        'security: the new encryption key file is not usable; keeping the current keys',
      );
    }
  }

  private apiOptions(material: TlsMaterial): tls.TlsOptions {
    // etcd requires client certificates when --client-cert-auth is set or a trusted CA is given.
    const requireClientCert = this.config.clientCertAuth || material.ca !== undefined;
    return serverTlsOptions(material, { requireClientCert, minVersion: this.minVersion });
  }

  private transportOptions(material: TlsMaterial): TransportTlsOptions {
    const requireClientCert = this.config.peerClientCertAuth || material.ca !== undefined;
    const allowed = { allowedCn: this.config.peerCertAllowedCn, allowedHostname: this.config.peerCertAllowedHostname };
    const checkNames = allowed.allowedCn !== undefined || allowed.allowedHostname !== undefined;
    return {
      server: serverTlsOptions(material, { requireClientCert, minVersion: this.minVersion }),
      client: clientTlsOptions(material, this.minVersion),
      ...(checkNames ? { verifyPeer: (socket: tls.TLSSocket) => checkPeerName(socket.getPeerCertificate(), allowed) } : {}),
    };
  }
}
