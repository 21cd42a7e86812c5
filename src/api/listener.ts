// One client port for gRPC and the HTTP/JSON gateway, as etcd serves both through cmux: each new
// connection's first bytes decide. The HTTP/2 preface ("PRI * HTTP/2.0") goes to grpc-js through
// its connection injector; anything else is HTTP/1.x and goes to the gateway's http.Server.
// With TLS the listener terminates TLS first and ALPN decides instead: a client offering only
// `h2` (every gRPC client) gets gRPC; one that also offers `http/1.1` (curl, browsers, Go's
// net/http) or no ALPN at all gets the gateway over HTTP/1.1. The gateway then reaches gRPC over a
// private Unix socket.
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';

const HTTP2_PREFACE_START = Buffer.from('PRI');
/** A connection that has not sent enough to be classified within this time is closed. */
export const SNIFF_TIMEOUT_MS = 10_000;
/** How often stop() checks whether every connection has closed. */
const CLOSE_POLL_MS = 20;
/**
 * ALPN on the TLS client port. gRPC needs h2 and gRPC clients offer nothing else (grpc-go, grpc-js,
 * grpc-java; C-core adds grpc-exp). A client that offers http/1.1 too is a general HTTP client:
 * it gets http/1.1 and so the gateway, because grpc-js cannot route HTTP/2 requests by content
 * type as etcd's server does. Returning undefined refuses the handshake (no common protocol).
 */
export function selectClientAlpn(offered: readonly string[]): string | undefined {
  if (offered.includes('http/1.1')) return 'http/1.1';
  return offered.includes('h2') ? 'h2' : undefined;
}

export interface ClientListenerOptions {
  /**
   * Serve TLS (Node's tls.createServer options: cert, key, ca, requestCert, rejectUnauthorized,
   * minVersion, ciphers). ALPN is chosen by the listener (selectClientAlpn).
   */
  tls?: tls.TlsOptions;
}

export class ClientListener {
  private readonly server: net.Server;
  private readonly http1: http.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Raw sockets under the TLS server until their handshake ends (close() must not wait for them). */
  private readonly handshaking = new Set<net.Socket>();
  /** TLS mode: plaintext gRPC for this process's own gateway, on a Unix socket in a private directory. */
  private local: { server: net.Server; dir: string; path: string } | null = null;
  /** HTTP/1 connections and how many requests each is serving (http.Server tracks only listening servers). */
  private readonly http1Requests = new Map<net.Socket, number>();
  private closing = false;

  constructor(
    private readonly injector: grpc.ConnectionInjector,
    handler: http.RequestListener,
    private readonly logger: Logger,
    private readonly options: ClientListenerOptions = {},
  ) {
    this.http1 = http.createServer((req, res) => {
      const socket = req.socket;
      this.http1Requests.set(socket, (this.http1Requests.get(socket) ?? 0) + 1);
      if (this.closing) res.setHeader('Connection', 'close');
      res.once('close', () => {
        const left = (this.http1Requests.get(socket) ?? 1) - 1;
        this.http1Requests.set(socket, left);
        if (this.closing && left === 0) socket.end();
      });
      handler(req, res);
    });
    this.server = options.tls === undefined ? net.createServer((socket) => this.accept(socket)) : this.createTlsServer(options.tls);
  }

  /** True when the port serves TLS. */
  get secure(): boolean {
    return this.options.tls !== undefined;
  }

  /** New TLS settings (reloaded certificates) for new connections; open connections keep theirs. */
  setSecureContext(options: tls.TlsOptions): void {
    assert(this.server instanceof tls.Server, 'setSecureContext on a plaintext listener');
    this.server.setSecureContext(options);
  }

  /**
   * TLS mode only: a plaintext gRPC endpoint for this process's gateway, which dials its own API
   * (as etcd's does) and has no client certificate. A Unix socket in a fresh 0700 directory, so
   * only this user's processes (who can read the node's keys anyway) reach it. Returns a grpc target.
   */
  listenLocal(): Promise<string> {
    assert(this.local === null, 'listenLocal twice');
    const dir = mkdtempSync(join(tmpdir(), 'tessera-api-'));
    const path = join(dir, 'grpc.sock');
    const server = net.createServer((socket) => this.accept(socket, true));
    this.local = { server, dir, path };
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve(`unix:${path}`);
      });
    });
  }

  private createTlsServer(options: tls.TlsOptions): tls.Server {
    const server = tls.createServer({
      ...options,
      ALPNCallback: ({ protocols }) => selectClientAlpn(protocols),
      handshakeTimeout: SNIFF_TIMEOUT_MS,
    });
    server.on('connection', (raw: net.Socket) => {
      this.handshaking.add(raw);
      raw.once('close', () => this.handshaking.delete(raw));
      raw.on('error', () => {}); // reported as tlsClientError
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => this.acceptSecure(socket));
    server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
      this.logger.debug(
        { event: 'client_tls_handshake_failed', remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, reason: error.message },
        'client TLS handshake failed',
      );
      socket.destroy();
    });
    return server;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        assert(address !== null && typeof address === 'object', 'a TCP listener has an address');
        resolve(address.port);
      });
    });
  }

  /** Stops accepting; connections already open stay until closeConnections(). */
  stopAccepting(): Promise<void> {
    for (const raw of this.handshaking) raw.destroy();
    const local = this.local;
    const closingLocal = new Promise<void>((resolve) => {
      if (local === null) return resolve();
      local.server.close(() => {
        rmSync(local.dir, { recursive: true, force: true });
        resolve();
      });
    });
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    return Promise.all([closing, closingLocal]).then(() => undefined);
  }

  /**
   * Call once the gRPC server has shut down: its connections carry no calls any more and are
   * destroyed (a client may not close its side for a while). HTTP/1 connections are ended as their
   * requests finish; whatever is left after `graceMs` is destroyed.
   */
  async closeConnections(graceMs: number): Promise<void> {
    this.closing = true;
    for (const socket of this.sockets) {
      const requests = this.http1Requests.get(socket);
      if (requests === undefined) socket.destroy();
      else if (requests === 0) socket.end();
    }
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, CLOSE_POLL_MS));
    }
    for (const socket of this.sockets) socket.destroy();
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.http1Requests.delete(socket);
    });
    socket.on('error', (error) => this.logger.debug({ err: error }, 'client connection error'));
  }

  /** After the TLS handshake: ALPN h2 is gRPC (gRPC clients always negotiate it); the rest is HTTP/1. */
  private acceptSecure(socket: tls.TLSSocket): void {
    this.track(socket);
    if (socket.alpnProtocol === 'h2') this.injector.injectConnection(socket);
    else this.handToHttp1(socket);
  }

  private handToHttp1(socket: net.Socket): void {
    this.http1Requests.set(socket, 0);
    this.http1.emit('connection', socket);
  }

  /** Plaintext: the first bytes decide. `grpcOnly` (the gateway's private socket) refuses HTTP/1. */
  private accept(socket: net.Socket, grpcOnly = false): void {
    this.track(socket);
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const decided =
        head.length >= HTTP2_PREFACE_START.length ||
        !HTTP2_PREFACE_START.subarray(0, head.length).equals(head);
      if (!decided) return;
      socket.off('data', onData);
      socket.pause();
      socket.setTimeout(0);
      socket.unshift(head);
      const isHttp2 = head.subarray(0, HTTP2_PREFACE_START.length).equals(HTTP2_PREFACE_START);
      if (isHttp2) this.injector.injectConnection(socket);
      else if (grpcOnly) socket.destroy();
      else this.handToHttp1(socket);
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
  }
}
