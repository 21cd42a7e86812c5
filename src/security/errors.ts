// Failures of the security layer, one class per failure an operator can act on. None of them is a
// client error: they surface at startup, on reload or when data on disk cannot be decrypted.

export class SecurityError extends Error {
  override name = 'SecurityError';
}

/** A key file is missing, unreadable, too open (group/other permissions) or malformed. */
export class KeyFileError extends SecurityError {
  override name = 'KeyFileError';
}

/**
 * An envelope cannot be opened: its key id is not in the key ring, or authentication failed (wrong
 * key under that id, or the bytes were altered). The message names the key id, never key bytes.
 */
export class DecryptionError extends SecurityError {
  override name = 'DecryptionError';
}

/** A certificate, key or CA file is missing, unreadable, or the key does not match the certificate. */
export class CertificateError extends SecurityError {
  override name = 'CertificateError';
}

/** The `openssl` command is not installed (dev certificate generation needs it). */
export class OpensslMissingError extends SecurityError {
  override name = 'OpensslMissingError';
  constructor(detail: string) {
    super(
      `openssl is needed to generate development certificates but could not be run (${detail}); ` +
        'install it (Debian/Ubuntu: apt-get install openssl) or pass your own certificates',
    );
  }
}

/**
 * A JWT key file (--auth-token jwt,pub-key=…,priv-key=…) is missing, unreadable, not PEM, of the
 * wrong type for the sign method, or the private key is not the half of a public key given.
 */
export class JwtKeyError extends SecurityError {
  override name = 'JwtKeyError';
}

/** Authenticate on a member whose --auth-token names only a public key: it can verify tokens, not issue them. */
export class JwtVerifyOnlyError extends SecurityError {
  override name = 'JwtVerifyOnlyError';
  constructor() {
    // etcd's auth.ErrVerifyOnly.
    super('auth: token signing attempted with verify-only key');
  }
}
