// One client port for gRPC and the HTTP/JSON gateway, as etcd serves both through cmux: each new
// connection's first bytes decide. The HTTP/2 preface ("PRI * HTTP/2.0") goes to grpc-js through
// its connection injector; anything else is HTTP/1.x and goes to the gateway's http.Server.
import * as http from 'node:http';
import * as net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { assert } from '../util/index.ts';

const HTTP2_PREFACE_START = Buffer.from('PRI');
/** A connection that has not sent enough to be classified within this time is closed. */
export const SNIFF_TIMEOUT_MS = 10_000;
/** How often stop() checks whether every connection has closed. */
const CLOSE_POLL_MS = 20;

export class ClientListener {
  private readonly server: net.Server;
  private readonly http1: http.Server;
  private readonly sockets = new Set<net.Socket>();
  /** HTTP/1 connections and how many requests each is serving (http.Server tracks only listening servers). */
  private readonly http1Requests = new Map<net.Socket, number>();
  private closing = false;

  constructor(
    private readonly injector: grpc.ConnectionInjector,
    handler: http.RequestListener,
    private readonly logger: Logger,
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
    this.server = net.createServer((socket) => this.accept(socket));
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
    return new Promise((resolve) => this.server.close(() => resolve()));
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

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.http1Requests.delete(socket);
    });
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', (error) => this.logger.debug({ err: error }, 'client connection error'));
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
      else {
        this.http1Requests.set(socket, 0);
        this.http1.emit('connection', socket);
      }
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
  }
}
