// Development certificates made with the `openssl` command (never hand-rolled ASN.1): a throwaway
// CA, per-node certificates that serve both client and peer TLS (SANs 127.0.0.1 and localhost,
// usable as server and client), a client certificate, and an expired one for negative tests.
import { spawnSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../util/index.ts';
import { OpensslMissingError, SecurityError } from './errors.ts';

export interface CertPair {
  certFile: string;
  keyFile: string;
}

export type CertUsage = 'server' | 'client' | 'server+client';

export interface IssueOptions {
  /** Subject common name. */
  cn: string;
  /** subjectAltName entries, e.g. `IP:127.0.0.1`, `DNS:localhost`. */
  sans?: string[];
  /** Validity in days (default 365). */
  days?: number;
  usage: CertUsage;
  /** Valid only in 2020 (for tests that expect an expired certificate to be refused). */
  expired?: boolean;
}

export interface DevCertificates {
  dir: string;
  ca: CertPair;
  /** One certificate per node name, for its client port and its peer port. */
  nodes: Map<string, CertPair>;
  /** For etcdctl and other clients (CN "tessera-dev-client"). */
  client: CertPair;
}

/** SANs every dev certificate carries: nodes and clients run on loopback. */
export const LOOPBACK_SANS = ['IP:127.0.0.1', 'DNS:localhost'];
const OPENSSL_TIMEOUT_MS = 30_000;

/** The installed openssl's version line; throws OpensslMissingError when it cannot be run. */
export function opensslVersion(): string {
  const result = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: OPENSSL_TIMEOUT_MS });
  if (result.error) throw new OpensslMissingError(result.error.message);
  if (result.status !== 0) throw new OpensslMissingError(`openssl version exited with ${result.status}: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

function openssl(args: string[], cwd: string): void {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8', timeout: OPENSSL_TIMEOUT_MS });
  if (result.error) throw new OpensslMissingError(result.error.message);
  if (result.status !== 0) throw new SecurityError(`openssl ${args[0]} failed (${result.status}): ${result.stderr.trim()}`);
}

/** A new EC P-256 key and a CSR for `cn`, in `dir`; the key file is made private (0600). */
function newKeyAndCsr(dir: string, name: string, cn: string): { keyFile: string; csrFile: string } {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', subject(cn), '-keyout', keyFile, '-out', csrFile], dir);
  chmodSync(keyFile, 0o600);
  return { keyFile, csrFile };
}

function subject(cn: string): string {
  assert(/^[A-Za-z0-9 ._-]{1,64}$/.test(cn), () => `common name "${cn}" has characters openssl -subj would misread`);
  return `/O=Tessera development/CN=${cn}`;
}

/** A self-signed CA (`<dir>/ca.crt`, `<dir>/ca.key`). */
export function generateCa(dir: string, options: { cn?: string; days?: number } = {}): CertPair {
  opensslVersion();
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  openssl(
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', String(options.days ?? 365), '-subj', subject(options.cn ?? 'tessera-dev-ca'),
      '-keyout', keyFile, '-out', certFile,
    ],
    dir,
  );
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile };
}

function extensions(options: IssueOptions): string {
  const eku = options.usage === 'server' ? 'serverAuth' : options.usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth';
  const lines = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${eku}`,
    ...(options.sans && options.sans.length > 0 ? [`subjectAltName=${options.sans.join(',')}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** Issues `<dir>/<name>.crt` and `<dir>/<name>.key`, signed by `ca`. */
export function issueCertificate(ca: CertPair, dir: string, name: string, options: IssueOptions): CertPair {
  assert(/^[A-Za-z0-9._-]+$/.test(name), () => `file name "${name}"`);
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(dir, `.${name}-`));
  try {
    const { keyFile: tmpKey, csrFile } = newKeyAndCsr(work, name, options.cn);
    const extFile = join(work, 'ext.cnf');
    writeFileSync(extFile, options.expired ? `[ext]\n${extensions(options)}` : extensions(options));
    const tmpCert = join(work, `${name}.crt`);
    if (options.expired) signExpired(ca, work, csrFile, extFile, tmpCert);
    else {
      openssl(
        [
          'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile,
          '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(options.days ?? 365),
          '-sha256', '-extfile', extFile, '-out', tmpCert,
        ],
        work,
      );
    }
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    writeFileSync(certFile, readFileSync(tmpCert));
    writeFileSync(keyFile, readFileSync(tmpKey), { mode: 0o600 });
    chmodSync(keyFile, 0o600);
    return { certFile, keyFile };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `openssl x509` cannot backdate a certificate; `openssl ca` can, given a minimal CA config. */
function signExpired(ca: CertPair, work: string, csrFile: string, extFile: string, out: string): void {
  writeFileSync(join(work, 'index.txt'), '');
  writeFileSync(join(work, 'serial'), `${randomBytes(8).toString('hex')}\n`);
  const config = join(work, 'ca.cnf');
  writeFileSync(
    config,
    [
      '[ca]', 'default_ca = dev_ca', '[dev_ca]', `database = ${join(work, 'index.txt')}`, `new_certs_dir = ${work}`,
      `serial = ${join(work, 'serial')}`, 'default_md = sha256', 'policy = policy_any', 'unique_subject = no',
      '[policy_any]', 'organizationName = optional', 'commonName = supplied', '',
    ].join('\n'),
  );
  openssl(
    [
      'ca', '-batch', '-config', config, '-cert', ca.certFile, '-keyfile', ca.keyFile, '-in', csrFile, '-out', out,
      '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', extFile, '-extensions', 'ext', '-notext',
    ],
    work,
  );
}

/**
 * The certificates of `tessera dev --secure` under `dir`: made once, reused while they are valid
 * for another day and every node has one (so a restarted dev cluster keeps its CA).
 */
export function generateDevCertificates(dir: string, nodeNames: string[], options: { days?: number } = {}): DevCertificates {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const days = options.days ?? 365;
  const pairOf = (name: string): CertPair => ({ certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) });
  const usable = (pair: CertPair) => existsSync(pair.certFile) && existsSync(pair.keyFile) && validForADay(pair.certFile);
  let ca = pairOf('ca');
  const fresh = !usable(ca);
  if (fresh) ca = generateCa(dir, { days });
  const nodes = new Map<string, CertPair>();
  for (const name of nodeNames) {
    const pair = pairOf(name);
    nodes.set(name, !fresh && usable(pair) ? pair : issueCertificate(ca, dir, name, { cn: name, sans: LOOPBACK_SANS, days, usage: 'server+client' }));
  }
  const clientPair = pairOf('client');
  const client = !fresh && usable(clientPair) ? clientPair : issueCertificate(ca, dir, 'client', { cn: 'tessera-dev-client', sans: LOOPBACK_SANS, days, usage: 'client' });
  return { dir, ca, nodes, client };
}

function validForADay(certFile: string): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    return Date.parse(cert.validTo) > Date.now() + 24 * 3600 * 1000;
  } catch {
    return false;
  }
}

export interface JwtKeyPair {
  privKeyFile: string;
  pubKeyFile: string;
}

/**
 * A JWT signing key pair for `--auth-token jwt,...`, made with openssl as etcd's docs do:
 * `<dir>/<name>.key` (private, 0600) and `<dir>/<name>.pub`. `kind`: rsa (2048 bits, for RS256..PS512),
 * ec-p256/ec-p384/ec-p521 (ES256/ES384/ES512, SEC1 `EC PRIVATE KEY` as `openssl ecparam` writes it),
 * ed25519 (EdDSA).
 */
export function generateJwtKeyPair(dir: string, name: string, kind: 'rsa' | 'ec-p256' | 'ec-p384' | 'ec-p521' | 'ed25519'): JwtKeyPair {
  assert(/^[A-Za-z0-9._-]+$/.test(name), () => `file name "${name}"`);
  opensslVersion();
  mkdirSync(dir, { recursive: true });
  const privKeyFile = join(dir, `${name}.key`);
  const pubKeyFile = join(dir, `${name}.pub`);
  const curves = { 'ec-p256': 'prime256v1', 'ec-p384': 'secp384r1', 'ec-p521': 'secp521r1' } as const;
  if (kind === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', privKeyFile], dir);
  else if (kind === 'ed25519') openssl(['genpkey', '-algorithm', 'ed25519', '-out', privKeyFile], dir);
  else openssl(['ecparam', '-genkey', '-name', curves[kind], '-noout', '-out', privKeyFile], dir);
  chmodSync(privKeyFile, 0o600);
  openssl(['pkey', '-in', privKeyFile, '-pubout', '-out', pubKeyFile], dir);
  return { privKeyFile, pubKeyFile };
}
