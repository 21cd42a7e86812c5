// Security primitives every layer may use (this folder imports only util/): TLS settings from
// certificate files with reload, the allowed-peer-name check, development certificates through
// openssl, and AES-256-GCM envelopes for encryption at rest. See docs/SECURITY.md.
export { SecurityError, KeyFileError, DecryptionError, CertificateError, OpensslMissingError } from './errors.ts';
export {
  Keyring,
  parseKeyFile,
  readKeyFile,
  addKeyToFile,
  reseal,
  envelopeKeyId,
  envelopeOverheadBytes,
  KEY_BYTES,
  MAX_KEYS,
  KEY_ID_PATTERN,
  ENVELOPE_FORMAT_AES256GCM,
} from './keyring.ts';
export type { EncryptionKey } from './keyring.ts';
export {
  loadTlsMaterial,
  serverTlsOptions,
  clientTlsOptions,
  secureContextOptions,
  MODERN_CIPHERS,
  DEFAULT_TLS_MIN_VERSION,
} from './tls.ts';
export type { TlsFiles, TlsMaterial, TlsMinVersion, ServerTlsPolicy } from './tls.ts';
export { TlsReloader, DEFAULT_TLS_RELOAD_INTERVAL_MS } from './reload.ts';
export type { TlsReloaderOptions, ReloadListener } from './reload.ts';
export { checkPeerName } from './names.ts';
export type { AllowedPeerNames } from './names.ts';
export { opensslVersion, generateCa, issueCertificate, generateDevCertificates, LOOPBACK_SANS } from './certs.ts';
export type { CertPair, CertUsage, IssueOptions, DevCertificates } from './certs.ts';
export { hashPassword, verifyPassword, SCRYPT_COST_LOG2 } from './password.ts';
