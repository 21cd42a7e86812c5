// Certificate reload without a restart: watches the TLS files' size and mtime (a periodic check,
// plus reload() for SIGHUP) and hands freshly loaded, checked material to the owner, who swaps it
// into its listeners (tls.Server#setSecureContext) and its dialers. Existing connections keep their
// session; new connections use the new certificates. A bad new file keeps the old material.
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadTlsMaterial } from './tls.ts';
import type { TlsFiles, TlsMaterial, TlsMinVersion } from './tls.ts';

/** Default period of the file check. */
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 5_000;

export interface TlsReloaderOptions {
  /** What this is for, in logs: "client", "peer". */
  label: string;
  minVersion?: TlsMinVersion;
  /** Period of the mtime check; 0 turns the timer off (reload() still works). */
  intervalMs?: number;
  logger?: Pick<Logger, 'info' | 'error'>;
}

export type ReloadListener = (material: TlsMaterial) => void;

export class TlsReloader {
  private material: TlsMaterial;
  private stamp: string;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners: ReloadListener[] = [];

  /** Loads the files now; throws CertificateError if they are unusable. */
  constructor(
    readonly files: TlsFiles,
    private readonly options: TlsReloaderOptions,
  ) {
    this.stamp = fileStamp(files);
    this.material = loadTlsMaterial(files, options.minVersion);
  }

  get current(): TlsMaterial {
    return this.material;
  }

  /** Called with the new material after each successful reload. */
  onReload(listener: ReloadListener): void {
    this.listeners.push(listener);
  }

  /** Starts the periodic check (unref'd: it never keeps the process alive). */
  start(): this {
    const intervalMs = this.options.intervalMs ?? DEFAULT_TLS_RELOAD_INTERVAL_MS;
    if (this.timer === null && intervalMs > 0) {
      this.timer = setInterval(() => this.check(), intervalMs);
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reloads if any file changed since the last load; true when new material is in use. */
  check(): boolean {
    const stamp = fileStamp(this.files);
    if (stamp === this.stamp) return false;
    return this.reload(stamp);
  }

  /** Loads the files again whether or not they changed (SIGHUP); true when new material is in use. */
  reload(stamp = fileStamp(this.files)): boolean {
    let material: TlsMaterial;
    try {
      material = loadTlsMaterial(this.files, this.options.minVersion);
    } catch (error) {
      // Half-written files (a copy in progress) land here too: the next check retries.
      this.options.logger?.error(
        { event: 'tls_reload_failed', tls: this.options.label, reason: (error as Error).message },
        'security: new TLS files are not usable; keeping the current certificates',
      );
      return false;
    }
    this.stamp = stamp;
    this.material = material;
    for (const listener of this.listeners) listener(material);
    this.options.logger?.info(
      { event: 'tls_reloaded', tls: this.options.label, certFile: this.files.certFile, validTo: material.validTo },
      'security: TLS certificates reloaded; new connections use them',
    );
    return true;
  }
}

function fileStamp(files: TlsFiles): string {
  return filesStamp([files.certFile, files.keyFile, ...(files.trustedCaFile ? [files.trustedCaFile] : [])]);
}

/** Size, mtime and inode of every file: a rename over the file (the usual rotation) changes the inode. */
export function filesStamp(paths: readonly string[]): string {
  return paths
    .map((path) => {
      try {
        const s = statSync(path);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}
