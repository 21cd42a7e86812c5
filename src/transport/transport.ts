// Transport: Tessera's peer links. Listens for peers, keeps one outbound message stream per peer,
// coalesces every message sent during an event-loop turn into one write per peer, and streams
// snapshots on connections of their own.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Message, SnapshotMsg } from '../raft/index.ts';
import { assert } from '../util/index.ts';
import { PeerCallError, PendingCalls, readCall, readReply } from './calls.ts';
import type { CallHandler } from './calls.ts';
import { decodeBatch } from './batch.ts';
import { readHello } from './codec.ts';
import type { Hello, StreamKind } from './codec.ts';
import { FrameConn, newCounters } from './conn.ts';
import type { TransportCounters } from './conn.ts';
import { TransportFaults } from './faults.ts';
import { resolveLimits } from './limits.ts';
import type { TransportLimits } from './limits.ts';
import { PeerLink } from './peer.ts';
import type { LinkHost, PeerAddress } from './peer.ts';
import { SnapshotReceiver, streamSnapshot } from './snapshot.ts';
import type { SnapshotHost } from './snapshot.ts';
import { FrameKind, PROTOCOL_VERSION, WireError, decodeBody, encodeFrame } from './wire.ts';

/**
 * TLS for peer links (mutual TLS when the server sets `requestCert` + `rejectUnauthorized` and the
 * client passes `cert`/`key`). Both sides take Node's SecureContextOptions (key, cert, ca, ...);
 * the transport sets host/port itself. Without this option links are plain TCP.
 */
export interface TransportTlsOptions {
  server: tls.TlsOptions;
  client: Omit<tls.ConnectionOptions, 'host' | 'port' | 'path' | 'socket'>;
  /**
   * Checks an accepted peer's certificate once its chain is verified (etcd's allowed CN/hostname);
   * a string rejects the connection with that reason before any frame is read.
   */
  verifyPeer?: (socket: tls.TLSSocket) => string | null;
}

export interface TransportOptions {
  nodeId: number;
  clusterId: string;
  listenHost: string;
  /** 0 picks a free port; read it from `port` after `start()`. */
  listenPort: number;
  logger?: Logger;
  tls?: TransportTlsOptions;
  limits?: Partial<TransportLimits>;
}

export interface TransportStats extends TransportCounters {
  /** Sockets open now: outbound and inbound, message and snapshot streams, including ones still handshaking. */
  connections: number;
  /** Peers with an established outbound message stream. */
  connectedPeers: number;
}

export type MessageHandler = (groupId: number, msg: Message) => void;
export type UnreachableHandler = (peerId: number) => void;
export type SnapshotStatus = 'finish' | 'failure';
export type SnapshotStatusHandler = (groupId: number, peerId: number, status: SnapshotStatus) => void;

export class Transport implements LinkHost, SnapshotHost {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly logger: Logger;
  readonly limits: TransportLimits;
  readonly counters: TransportCounters = newCounters();
  readonly faults = new TransportFaults();
  private readonly options: TransportOptions;
  /** Current TLS settings; updateTls() swaps them (certificate reload). */
  private tlsOptions: TransportTlsOptions | undefined;
  private readonly links = new Map<number, PeerLink>();
  private readonly sockets = new Set<net.Socket>();
  private readonly tlsHandshakes = new Set<net.Socket>();
  private readonly dirty = new Set<PeerLink>();
  private readonly unreachable = new Set<number>();
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private server: net.Server | null = null;
  private flushHandle: NodeJS.Immediate | null = null;
  private outboundSnapshots = 0;
  private inboundSnapshots = 0;
  private closed = false;
  private messageHandler: MessageHandler = () => {};
  private unreachableHandler: UnreachableHandler = () => {};
  private snapshotStatusHandler: SnapshotStatusHandler = () => {};
  private peerCallHandler: CallHandler = (_from, method) => Promise.reject(new Error(`no handler for peer call ${method}`));
  private readonly calls: PendingCalls;

  constructor(options: TransportOptions) {
    assert(
      Number.isSafeInteger(options.nodeId) && options.nodeId > 0,
      'nodeId must be a positive safe integer',
    );
    assert(
      options.clusterId.length > 0 && options.clusterId.length <= 256,
      'clusterId must be 1..256 characters',
    );
    this.options = options;
    this.tlsOptions = options.tls;
    this.nodeId = options.nodeId;
    this.clusterId = options.clusterId;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.limits = resolveLimits(options.limits);
    this.calls = new PendingCalls(this.limits.maxPendingCalls);
  }

  /** Starts listening; resolves once bound. */
  start(): Promise<void> {
    assert(this.server === null && !this.closed, 'transport started twice');
    const tlsOptions = this.tlsOptions;
    const server = tlsOptions
      ? tls.createServer({ handshakeTimeout: this.limits.handshakeTimeoutMs, ...tlsOptions.server })
      : net.createServer();
    server.maxConnections = this.limits.maxInboundConnections;
    server.on(tlsOptions ? 'secureConnection' : 'connection', (socket: net.Socket) => this.accept(socket));
    if (tlsOptions)
      server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) =>
        this.onTlsClientError(error, socket),
      );
    if (tlsOptions) server.on('connection', (socket: net.Socket) => this.trackTlsHandshake(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listenPort, this.options.listenHost, () => {
        server.off('error', reject);
        server.on('error', (error) =>
          this.logger.error({ event: 'listener_error', err: error }, 'transport: listener error'),
        );
        this.logger.info(
          { event: 'listening', host: this.options.listenHost, port: this.port, tls: Boolean(tlsOptions) },
          'transport: listening for peers',
        );
        resolve();
      });
    });
  }

  /** The bound port (the real one when `listenPort` was 0). */
  get port(): number {
    const address = this.server?.address();
    assert(address !== null && typeof address === 'object', 'transport is not listening');
    return address.port;
  }

  /**
   * New TLS settings (reloaded certificates): new inbound handshakes and new dials use them;
   * established connections keep theirs. Only for a transport started with `tls`.
   */
  updateTls(options: TransportTlsOptions): void {
    assert(this.tlsOptions !== undefined, 'updateTls on a transport without TLS');
    this.tlsOptions = options;
    if (this.server instanceof tls.Server) this.server.setSecureContext(options.server);
  }

  /** Replaces the peer set: new peers are dialled, removed ones closed, moved ones redialled. Self is ignored. */
  setPeers(peers: PeerAddress[]): void {
    assert(!this.closed, 'setPeers on a closed transport');
    const wanted = new Map<number, PeerAddress>();
    for (const peer of peers) {
      assert(Number.isSafeInteger(peer.id) && peer.id > 0, `bad peer id ${peer.id}`);
      assert(
        Number.isSafeInteger(peer.port) && peer.port > 0 && peer.port < 65536,
        `bad port for peer ${peer.id}`,
      );
      if (peer.id !== this.nodeId) wanted.set(peer.id, { id: peer.id, host: peer.host, port: peer.port });
    }
    for (const [id, link] of this.links) {
      if (wanted.has(id)) continue;
      link.close();
      this.links.delete(id);
      this.dirty.delete(link);
    }
    for (const [id, address] of wanted) {
      const link = this.links.get(id);
      if (link) {
        link.updateAddress(address);
        continue;
      }
      const created = new PeerLink(address, this);
      this.links.set(id, created);
      created.start();
    }
  }

  /** Queues `msg` for `msg.to`; everything queued in this turn leaves in one write per peer. */
  send(groupId: number, msg: Message): void {
    assert(Number.isSafeInteger(groupId) && groupId >= 0, `bad group id ${groupId}`);
    assert(msg.to !== this.nodeId, 'a node does not send messages to itself');
    if (this.closed) return;
    if (msg.type === 'snap') {
      this.sendSnapshot(groupId, msg);
      return;
    }
    const link = this.links.get(msg.to);
    if (link === undefined) {
      this.counters.dropped += 1;
      this.reportUnreachable(msg.to);
      return;
    }
    if (this.faults.isOutboundBlocked(msg.to)) {
      this.counters.faultDropped += 1;
      return;
    }
    const delayMs = this.faults.delayMs(msg.to);
    if (delayMs > 0) this.sendDelayed(link, groupId, msg, delayMs);
    else this.enqueue(link, groupId, msg);
  }

  /**
   * Asks peer `peerId` (its onCall handler) and resolves with its answer. Sent with this turn's
   * messages; never retried. Rejects with PeerCallError: 'unreachable' (not connected, or cut by an
   * injected fault), 'timeout', 'remote' (the handler threw; its message), 'overloaded', 'closed'.
   */
  call(peerId: number, method: string, body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.closed) return Promise.reject(new PeerCallError('closed', 'transport: closed'));
    const link = this.links.get(peerId);
    if (link === undefined || this.faults.isOutboundBlocked(peerId)) {
      return Promise.reject(new PeerCallError('unreachable', `transport: peer ${peerId.toString(16)} is unreachable`));
    }
    return this.calls.start(peerId, timeoutMs, (id) => {
      const frame = encodeFrame(FrameKind.call, { id, method, body });
      if (frame.length - 4 > this.limits.maxCallBytes) {
        throw new RangeError(`a ${method} call of ${frame.length - 4} bytes exceeds maxCallBytes ${this.limits.maxCallBytes}`);
      }
      if (!link.enqueueFrame(frame)) return false;
      this.markDirty(link);
      return true;
    });
  }

  /** Sets the handler answering peers' calls (replaces the previous one). */
  onCall(handler: CallHandler): void {
    this.peerCallHandler = handler;
  }

  /** Sets the handler for every message received (replaces the previous one). */
  onMessage(handler: MessageHandler): void {
    this.messageHandler = handler;
  }

  /** Sets the handler told, at most once per peer per turn, that a peer could not be reached. */
  onUnreachable(handler: UnreachableHandler): void {
    this.unreachableHandler = handler;
  }

  /** Sets the handler told how each snapshot sent with `send` ended. */
  onSnapshotStatus(handler: SnapshotStatusHandler): void {
    this.snapshotStatusHandler = handler;
  }

  stats(): TransportStats {
    let connectedPeers = 0;
    for (const link of this.links.values()) if (link.connected) connectedPeers += 1;
    return { ...this.counters, connections: this.sockets.size, connectedPeers };
  }

  /** Stops listening and dialling and closes every connection. Queued messages are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.calls.failAll('transport: closed');
    if (this.flushHandle !== null) clearImmediate(this.flushHandle);
    this.flushHandle = null;
    for (const timer of this.delayTimers) clearTimeout(timer);
    this.delayTimers.clear();
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.dirty.clear();
    for (const socket of this.sockets) socket.destroy();
    for (const socket of this.tlsHandshakes) socket.destroy();
    const server = this.server;
    if (server === null) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.logger.info({ event: 'closed' }, 'transport: closed');
  }

  // ------------------------------------------------------------ LinkHost / SnapshotHost

  markDirty(link: PeerLink): void {
    this.dirty.add(link);
    this.scheduleFlush();
  }

  reportUnreachable(peerId: number): void {
    this.unreachable.add(peerId);
    this.scheduleFlush();
  }

  deliver(groupId: number, msg: Message): void {
    this.messageHandler(groupId, msg);
  }

  acquireInboundSnapshot(): boolean {
    if (this.inboundSnapshots >= this.limits.maxInboundSnapshots) return false;
    this.inboundSnapshots += 1;
    return true;
  }

  releaseInboundSnapshot(): void {
    assert(this.inboundSnapshots > 0, 'inbound snapshot slot released twice');
    this.inboundSnapshots -= 1;
  }

  /** Dials `address`, sends our hello, and resolves once the peer's hello names the expected node and cluster. */
  async openStream(address: PeerAddress, stream: StreamKind): Promise<FrameConn> {
    const socket = await this.dial(address);
    const conn = new FrameConn(socket, this.logger, this.counters, this.limits.maxFrameBytes, () => {});
    conn.peerId = address.id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => conn.close('handshake timeout'), this.limits.handshakeTimeoutMs);
      conn.onClose((reason) => {
        clearTimeout(timer);
        reject(new Error(`connection closed during handshake: ${reason}`));
      });
      conn.setHandler((kind, body) => {
        const hello = this.readPeerHello(conn, kind, body);
        if (hello.nodeId !== address.id)
          throw new WireError(`dialled node ${address.id} but node ${hello.nodeId} answered`);
        clearTimeout(timer);
        conn.setHandler((unexpected) => {
          throw new WireError(`unexpected frame kind ${unexpected} from the accepting side`);
        });
        resolve(conn);
      });
      conn.send(this.helloFrame(stream), 1);
    });
  }

  // ------------------------------------------------------------ internals

  private enqueue(link: PeerLink, groupId: number, msg: Message): void {
    if (!link.enqueue({ groupId, msg })) {
      this.counters.dropped += 1;
      this.reportUnreachable(link.id);
      return;
    }
    this.markDirty(link);
  }

  private sendDelayed(link: PeerLink, groupId: number, msg: Message, delayMs: number): void {
    if (link.delayedMessages >= this.limits.maxPeerQueueMessages) {
      this.counters.faultDropped += 1;
      return;
    }
    link.delayedMessages += 1;
    const timer = setTimeout(() => {
      this.delayTimers.delete(timer);
      link.delayedMessages -= 1;
      if (this.links.get(link.id) === link) this.enqueue(link, groupId, msg);
    }, delayMs);
    this.delayTimers.add(timer);
  }

  private scheduleFlush(): void {
    if (this.flushHandle !== null || this.closed) return;
    this.flushHandle = setImmediate(() => this.flushScheduled());
  }

  /**
   * Writes every peer's queued messages now, one write per peer. The Raft loop calls this after
   * each send phase of a turn, so that an append leaves before the turn's WAL write is issued
   * instead of one loop iteration later; anything else is written by the scheduled flush.
   */
  flush(): void {
    for (const link of this.dirty) link.flush();
    this.dirty.clear();
  }

  /** Once per loop iteration: what flush() did not write yet, then the unreachable reports. */
  private flushScheduled(): void {
    this.flushHandle = null;
    this.flush();
    const unreachable = [...this.unreachable];
    this.unreachable.clear();
    for (const peerId of unreachable) this.callHandler('unreachable', () => this.unreachableHandler(peerId));
  }

  private sendSnapshot(groupId: number, msg: SnapshotMsg): void {
    const peerId = msg.to;
    const link = this.links.get(peerId);
    const refuse = (reason: string): void => {
      this.logger.warn(
        { event: 'snapshot_send_failed', peer: peerId, group: groupId, reason },
        'transport: snapshot not sent',
      );
      setImmediate(() => this.reportSnapshot(groupId, peerId, 'failure'));
    };
    if (link === undefined) {
      this.reportUnreachable(peerId);
      return refuse('unknown peer');
    }
    if (this.faults.isOutboundBlocked(peerId)) {
      this.counters.faultDropped += 1;
      return refuse('dropped by fault injection');
    }
    if (msg.snapshot.data.length > this.limits.maxSnapshotBytes)
      return refuse('snapshot exceeds maxSnapshotBytes');
    if (this.outboundSnapshots >= this.limits.maxOutboundSnapshots)
      return refuse('too many outbound snapshots');
    this.outboundSnapshots += 1;
    const startedMs = Date.now();
    streamSnapshot(this, link.address, groupId, msg)
      .then(
        () => {
          this.counters.messagesSent += 1;
          this.logger.info(
            {
              event: 'snapshot_sent',
              peer: peerId,
              group: groupId,
              bytes: msg.snapshot.data.length,
              ms: Date.now() - startedMs,
            },
            'transport: snapshot sent',
          );
          this.reportSnapshot(groupId, peerId, 'finish');
        },
        (error: unknown) => {
          this.logger.warn(
            {
              event: 'snapshot_send_failed',
              peer: peerId,
              group: groupId,
              reason: error instanceof Error ? error.message : String(error),
            },
            'transport: snapshot not delivered',
          );
          this.reportSnapshot(groupId, peerId, 'failure');
        },
      )
      .finally(() => {
        this.outboundSnapshots -= 1;
      });
  }

  private reportSnapshot(groupId: number, peerId: number, status: SnapshotStatus): void {
    if (this.closed) return;
    this.callHandler('snapshot status', () => this.snapshotStatusHandler(groupId, peerId, status));
  }

  private callHandler(what: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.logger.error({ event: 'handler_error', handler: what, err: error }, 'transport: handler threw');
    }
  }

  private dial(address: PeerAddress): Promise<net.Socket> {
    const tlsOptions = this.tlsOptions;
    const socket = tlsOptions
      ? tls.connect({ ...tlsOptions.client, host: address.host, port: address.port })
      : net.connect({ host: address.host, port: address.port });
    this.track(socket);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => socket.destroy(new Error(`dial timeout after ${this.limits.dialTimeoutMs} ms`)),
        this.limits.dialTimeoutMs,
      );
      const onFailure = (error?: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(error ?? new Error('closed while dialling'));
      };
      const onClose = (): void => onFailure();
      socket.once('error', onFailure);
      socket.once('close', onClose);
      socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', onFailure);
        socket.off('close', onClose);
        resolve(socket);
      });
    });
  }

  /** Every socket is tracked (for close() and stats) and never left without an error listener. */
  private track(socket: net.Socket): void {
    if (this.sockets.has(socket)) return;
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('error', () => {}); // reported by the owner (FrameConn or dial) through 'close'
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** Raw sockets under a TLS server, until their handshake ends: close() must not wait for them. */
  private trackTlsHandshake(socket: net.Socket): void {
    this.tlsHandshakes.add(socket);
    socket.on('close', () => this.tlsHandshakes.delete(socket));
    socket.on('error', () => {}); // the TLS layer reports it as tlsClientError
  }

  private accept(socket: net.Socket): void {
    this.track(socket);
    if (this.closed) return;
    const verifyPeer = this.tlsOptions?.verifyPeer;
    const refusal = verifyPeer && socket instanceof tls.TLSSocket ? verifyPeer(socket) : null;
    if (refusal !== null) {
      this.logger.warn(
        { event: 'peer_certificate_rejected', remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, reason: refusal },
        'transport: peer certificate not allowed; closing',
      );
      socket.destroy();
      return;
    }
    const conn = new FrameConn(socket, this.logger, this.counters, this.limits.maxFrameBytes, () => {});
    const timer = setTimeout(
      () => conn.reject('no hello before handshakeTimeoutMs'),
      this.limits.handshakeTimeoutMs,
    );
    conn.onClose(() => clearTimeout(timer));
    conn.setHandler((kind, body) => {
      const hello = this.readPeerHello(conn, kind, body);
      clearTimeout(timer);
      conn.send(this.helloFrame(hello.stream), 1);
      if (hello.stream === 'message') conn.setHandler((k, b) => this.onBatchFrame(conn, k, b));
      else conn.setHandler(new SnapshotReceiver(conn, hello.nodeId, this).onFrame);
      this.logger.debug(
        { event: 'peer_accepted', peer: hello.nodeId, stream: hello.stream, remote: conn.remote },
        'transport: accepted peer stream',
      );
    });
  }

  private onBatchFrame(conn: FrameConn, kind: number, body: Buffer): void {
    if (kind === FrameKind.call || kind === FrameKind.reply) return this.onCallFrame(conn.peerId, kind, body);
    if (kind !== FrameKind.batch) throw new WireError(`unexpected frame kind ${kind} on a message stream`);
    const items = decodeBatch(body);
    const peerId = conn.peerId;
    for (const { msg } of items) {
      if (msg.from !== peerId || msg.to !== this.nodeId) {
        throw new WireError(`misrouted message ${msg.from}->${msg.to} on a stream from ${peerId}`);
      }
    }
    if (this.faults.isInboundBlocked(peerId)) {
      this.counters.faultDropped += items.length;
      return;
    }
    this.counters.messagesReceived += items.length;
    for (const { groupId, msg } of items) this.messageHandler(groupId, msg);
  }

  /** A call from `peerId` (answered on our outbound stream to it) or a reply to one of ours. */
  private onCallFrame(peerId: number, kind: number, body: Buffer): void {
    if (body.length > this.limits.maxCallBytes) throw new WireError(`call frame of ${body.length} bytes exceeds maxCallBytes`);
    if (this.faults.isInboundBlocked(peerId)) {
      this.counters.faultDropped += 1;
      return;
    }
    if (kind === FrameKind.reply) return this.calls.settle(peerId, readReply(decodeBody(body)));
    const call = readCall(decodeBody(body));
    const answer = (ok: boolean, result: unknown): void => {
      const link = this.links.get(peerId);
      if (this.closed || link === undefined || this.faults.isOutboundBlocked(peerId)) return;
      let frame = encodeFrame(FrameKind.reply, { id: call.id, ok, body: result });
      if (frame.length - 4 > this.limits.maxCallBytes) {
        frame = encodeFrame(FrameKind.reply, { id: call.id, ok: false, body: 'reply exceeds maxCallBytes' });
      }
      if (link.enqueueFrame(frame)) this.markDirty(link);
    };
    let pending: Promise<unknown>;
    try {
      pending = this.peerCallHandler(peerId, call.method, call.body);
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (result) => answer(true, result),
      (error: unknown) => answer(false, error instanceof Error ? error.message : String(error)),
    );
  }

  /** Checks the first frame of a connection is a hello from our cluster and not from ourselves. */
  private readPeerHello(conn: FrameConn, kind: number, body: Buffer): Hello {
    if (kind !== FrameKind.hello) throw new WireError(`expected hello, got frame kind ${kind}`);
    const hello = readHello(decodeBody(body));
    conn.peerId = hello.nodeId;
    if (hello.clusterId !== this.clusterId) {
      this.logger.error(
        {
          event: 'cluster_mismatch',
          peer: hello.nodeId,
          remote: conn.remote,
          peerClusterId: hello.clusterId,
          clusterId: this.clusterId,
        },
        'transport: peer belongs to another cluster; rejecting',
      );
      throw new WireError('cluster id mismatch');
    }
    if (hello.nodeId === this.nodeId) throw new WireError('peer claims our own node id');
    return hello;
  }

  private helloFrame(stream: StreamKind): Buffer {
    const hello: Hello = {
      version: PROTOCOL_VERSION,
      clusterId: this.clusterId,
      nodeId: this.nodeId,
      stream,
    };
    return encodeFrame(FrameKind.hello, hello);
  }

  private onTlsClientError(error: Error, socket: tls.TLSSocket): void {
    this.logger.warn(
      {
        event: 'tls_handshake_failed',
        remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`,
        reason: error.message,
      },
      'transport: peer TLS handshake failed',
    );
    socket.destroy();
  }
}
