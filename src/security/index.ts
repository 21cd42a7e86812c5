// Security primitives every layer may use (this folder imports only util/): TLS settings from
// certificate files with reload, the allowed-peer-name check, development certificates through
// openssl, AES-256-GCM envelopes for encryption at rest, and JWT auth tokens. See docs/SECURITY.md.
export {
  SecurityError,
  KeyFileError,
  DecryptionError,
  CertificateError,
  OpensslMissingError,
  JwtKeyError,
  JwtVerifyOnlyError,
} from './errors.ts';
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
export { TlsReloader, DEFAULT_TLS_RELOAD_INTERVAL_MS, filesStamp } from './reload.ts';
export type { TlsReloaderOptions, ReloadListener } from './reload.ts';
export { checkPeerName } from './names.ts';
export type { AllowedPeerNames } from './names.ts';
export { opensslVersion, generateCa, issueCertificate, generateDevCertificates, generateJwtKeyPair, LOOPBACK_SANS } from './certs.ts';
export type { CertPair, CertUsage, IssueOptions, DevCertificates, JwtKeyPair } from './certs.ts';
export { hashPassword, verifyPassword, SCRYPT_COST_LOG2 } from './password.ts';
export { JwtTokenKeeper, MAX_CACHED_JWTS, MAX_REFUSED_JWTS, REFUSED_JWT_CACHE_MS } from './jwt.ts';
export type { JwtClaims, JwtVerdict, JwtKeeperOptions } from './jwt.ts';
export {
  parseAuthTokenSpec,
  parseGoDuration,
  loadJwtKeys,
  JWT_SIGN_METHODS,
  DEFAULT_JWT_TTL_MS,
  MAX_JWT_TTL_MS,
  MAX_JWT_PUBLIC_KEYS,
  MIN_HMAC_SECRET_BYTES,
} from './jwt-keys.ts';
export type { AuthTokenSpec, JwtOptions, JwtSignMethod, JwtKeySet, JwtVerifyKey } from './jwt-keys.ts';
