// TLS settings built from certificate files, as etcd takes them (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth and the --peer-* twins): TLS 1.2 at least, AEAD cipher
// suites with forward secrecy only, and a check that the key matches the certificate at load time.
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { CertificateError } from './errors.ts';

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';
export const DEFAULT_TLS_MIN_VERSION: TlsMinVersion = 'TLSv1.2';

/**
 * TLS 1.3 suites (all AEAD) and, for TLS 1.2, ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
 * only: no CBC, no RSA key exchange, no SHA-1 MACs. Go's crypto/tls (etcdctl, clientv3) offers all
 * of the 1.2 ones.
 */
export const MODERN_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Where one endpoint's certificate, key and (optional) trusted CA bundle live. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle that signs the other side's certificates (clients' for a server, servers' for a client). */
  trustedCaFile?: string;
}

/** The bytes of TlsFiles, checked: the key matches the certificate, the CA bundle parses. */
export interface TlsMaterial {
  readonly files: TlsFiles;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  /** When the certificate expires (ISO string, for logs). */
  readonly validTo: string;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new CertificateError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/** Reads and checks TLS files; throws CertificateError with the file name on any problem. */
export function loadTlsMaterial(files: TlsFiles, minVersion: TlsMinVersion = DEFAULT_TLS_MIN_VERSION): TlsMaterial {
  const cert = readPem(files.certFile, 'certificate');
  const key = readPem(files.keyFile, 'key');
  const ca = files.trustedCaFile === undefined ? undefined : readPem(files.trustedCaFile, 'trusted CA file');
  let validTo: string;
  try {
    validTo = new Date(new X509Certificate(cert).validTo).toISOString();
  } catch (error) {
    throw new CertificateError(`${files.certFile} is not a PEM certificate: ${(error as Error).message}`);
  }
  try {
    // Fails when the key does not match the certificate or a file is not PEM.
    tls.createSecureContext({ cert, key, ca, minVersion, ciphers: MODERN_CIPHERS });
  } catch (error) {
    throw new CertificateError(`cannot use ${files.certFile} with ${files.keyFile}${ca ? ` and ${files.trustedCaFile}` : ''}: ${(error as Error).message}`);
  }
  return { files, cert, key, ca, validTo };
}

/** What a TLS server asks of its clients. */
export interface ServerTlsPolicy {
  /**
   * Require a client certificate signed by the trusted CA. etcd requires one whenever
   * --client-cert-auth is set *or* a trusted CA file is given; callers pass that rule in.
   */
  requireClientCert: boolean;
  minVersion?: TlsMinVersion;
  /** ALPN protocols offered, in preference order. */
  alpnProtocols?: string[];
}

/** The parts of a server's options that change on a certificate reload (tls.Server#setSecureContext). */
export function secureContextOptions(material: TlsMaterial, minVersion: TlsMinVersion = DEFAULT_TLS_MIN_VERSION): tls.SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca ? { ca: material.ca } : {}),
    minVersion,
    ciphers: MODERN_CIPHERS,
    // Prefer our order of suites over the client's.
    honorCipherOrder: true,
  };
}

/** Options for tls.createServer. */
export function serverTlsOptions(material: TlsMaterial, policy: ServerTlsPolicy): tls.TlsOptions {
  if (policy.requireClientCert && material.ca === undefined) {
    throw new CertificateError('client certificate authentication needs a trusted CA file');
  }
  return {
    ...secureContextOptions(material, policy.minVersion),
    requestCert: policy.requireClientCert,
    rejectUnauthorized: policy.requireClientCert,
    ...(policy.alpnProtocols ? { ALPNProtocols: policy.alpnProtocols } : {}),
  };
}

/**
 * Options for tls.connect: our certificate for the server to check, the trusted CA to check the
 * server's (Node's bundled roots when there is none), and the server's name checked against its
 * certificate (SAN) as always.
 */
export function clientTlsOptions(material: TlsMaterial, minVersion: TlsMinVersion = DEFAULT_TLS_MIN_VERSION): tls.ConnectionOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca ? { ca: material.ca } : {}),
    minVersion,
    ciphers: MODERN_CIPHERS,
    rejectUnauthorized: true,
  };
}
