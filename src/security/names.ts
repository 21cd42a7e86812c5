// The allowed-peer-name check (etcd's --peer-cert-allowed-cn and --peer-cert-allowed-hostname):
// after a verified TLS handshake, the peer's certificate must also carry the expected name.
import * as tls from 'node:tls';

export interface AllowedPeerNames {
  /** The certificate's subject CN must equal this. */
  allowedCn?: string;
  /** The certificate must be valid for this host name or IP (subjectAltName), as a server's is checked. */
  allowedHostname?: string;
}

/** Null when the certificate passes, else why not. Call only after the chain itself was verified. */
export function checkPeerName(cert: tls.PeerCertificate | null | undefined, allowed: AllowedPeerNames): string | null {
  if (allowed.allowedCn === undefined && allowed.allowedHostname === undefined) return null;
  if (!cert || Object.keys(cert).length === 0) return 'the peer presented no certificate';
  if (allowed.allowedCn !== undefined) {
    const cn = certificateCn(cert);
    if (cn !== allowed.allowedCn) return `certificate CN "${cn ?? ''}" is not the allowed CN "${allowed.allowedCn}"`;
  }
  if (allowed.allowedHostname !== undefined) {
    const error = tls.checkServerIdentity(allowed.allowedHostname, cert);
    if (error !== undefined) return `certificate is not valid for allowed hostname "${allowed.allowedHostname}": ${error.message}`;
  }
  return null;
}

function certificateCn(cert: tls.PeerCertificate): string | undefined {
  const cn: unknown = cert.subject?.CN;
  if (typeof cn === 'string') return cn;
  return Array.isArray(cn) && typeof cn[0] === 'string' ? cn[0] : undefined;
}
