// The workloads, as seen by one worker thread: each prepares its connections and state, then
// hands back one operation per closed-loop client (and, for watch, streams that record events).
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { KvCodec } from './codec.ts';
import type { BenchConfig } from './config.ts';
import { loadTxnCount } from './config.ts';
import type { KeyChooser, KeySpace } from './keys.ts';
import { keyChooser, makeValue } from './keys.ts';
import type { WorkerInit } from './protocol.ts';
import type { RpcConnection } from './rpc.ts';
import { PATHS, RpcError, StreamExchange } from './rpc.ts';
import type { Histogram } from './histogram.ts';
import type { RunState } from './run-state.ts';
import { FatalBenchError, wallMs } from './run-state.ts';
import {
  decodeLeaseGrant,
  decodeLeaseKeepAliveTtl,
  scanWatch,
  encodeLeaseGrant,
  encodeLeaseKeepAlive,
  encodeWatchCreate,
  prefixRangeEnd,
} from './wire.ts';
import type { WatchFlags } from './wire.ts';

/** One operation of one client; resolves to the name of an extra histogram (read/write) or null. */
export type ClientOp = () => Promise<string | null>;

export interface WorkerContext {
  init: WorkerInit;
  config: BenchConfig;
  run: RunState;
  conns: RpcConnection[];
  codec: KvCodec;
  keys: KeySpace;
  chooser: KeyChooser;
  /** Ends the run with a message (for failures outside a client's operation, e.g. a watch stream). */
  fatal(message: string): void;
}

export interface PreparedWorkload {
  /** The RPC the clients call, for error messages. */
  path: string;
  clients: ClientOp[];
  /** True when the worker must keep running until told to stop even after its clients finish. */
  untilStopped: boolean;
  close(): void;
}

/** How long setup (watch creation, lease grants) may take. */
const SETUP_TIMEOUT_MS = 120_000;

function connFor(ctx: WorkerContext, client: number): RpcConnection {
  return ctx.conns[client % ctx.conns.length];
}

/** Per-call deadline; 0 means none (a deadline costs grpc-js a timer per call). */
function timeout(ctx: WorkerContext): number | null {
  return ctx.config.timeoutMs > 0 ? ctx.config.timeoutMs : null;
}

function unaryClients(ctx: WorkerContext, count: number, make: (conn: RpcConnection) => ClientOp): ClientOp[] {
  return Array.from({ length: count }, (_, i) => make(connFor(ctx, i)));
}

function preparePut(ctx: WorkerContext): PreparedWorkload {
  const value = makeValue(ctx.config.valSize);
  const clients = unaryClients(ctx, ctx.init.clients, (conn) => async () => {
    const response = await conn.unary(PATHS.put, ctx.codec.put(ctx.keys.key(ctx.chooser.next()), value), timeout(ctx));
    ctx.codec.consume('put', response);
    return null;
  });
  return { path: PATHS.put, clients, untilStopped: false, close: () => {} };
}

function prepareGet(ctx: WorkerContext): PreparedWorkload {
  const serializable = ctx.config.consistency === 's';
  const clients = unaryClients(ctx, ctx.init.clients, (conn) => async () => {
    const request = ctx.codec.range(ctx.keys.key(ctx.chooser.next()), serializable);
    ctx.codec.consume('range', await conn.unary(PATHS.range, request, timeout(ctx)));
    return null;
  });
  return { path: PATHS.range, clients, untilStopped: false, close: () => {} };
}

/** YCSB-style mix: each operation reads with probability readRatio, otherwise updates. */
function prepareMixed(ctx: WorkerContext): PreparedWorkload {
  const value = makeValue(ctx.config.valSize);
  const serializable = ctx.config.consistency === 's';
  const clients = unaryClients(ctx, ctx.init.clients, (conn) => async () => {
    const key = ctx.keys.key(ctx.chooser.next());
    if (Math.random() < ctx.config.readRatio) {
      ctx.codec.consume('range', await conn.unary(PATHS.range, ctx.codec.range(key, serializable), timeout(ctx)));
      return 'read';
    }
    ctx.codec.consume('put', await conn.unary(PATHS.put, ctx.codec.put(key, value), timeout(ctx)));
    return 'write';
  });
  return { path: `${PATHS.range} and ${PATHS.put}`, clients, untilStopped: false, close: () => {} };
}

/**
 * Compare-and-swap: put the key if its mod_revision is still the one this worker last saw; on a
 * conflict the failure branch reads the current revision, which the next attempt uses.
 */
function prepareTxn(ctx: WorkerContext): PreparedWorkload {
  const value = makeValue(ctx.config.valSize);
  const knownModRevision = new Map<number, number>();
  const clients = unaryClients(ctx, ctx.init.clients, (conn) => async () => {
    const index = ctx.chooser.next();
    const request = ctx.codec.casTxn(ctx.keys.key(index), knownModRevision.get(index) ?? 0, value);
    const result = ctx.codec.decodeCas(await conn.unary(PATHS.txn, request, timeout(ctx)));
    knownModRevision.set(index, result.modRevision);
    if (ctx.run.phase === 'measure') ctx.run.count(result.succeeded ? 'casSucceeded' : 'casFailed');
    return null;
  });
  return { path: PATHS.txn, clients, untilStopped: false, close: () => {} };
}

/**
 * Writes the key space once, fast: each operation is one Txn with no compares putting `batch`
 * consecutive keys (so 1M keys are 10k requests at the default 100). Worker w of W takes batches
 * w, w+W, w+2W, ... (its clients share that sequence), so with the default --total the workers
 * together write every key exactly once. Values are random bytes, so a server that compresses
 * (Tessera's snapshots) stores what real data would cost, not a repeated pattern.
 */
function prepareLoad(ctx: WorkerContext): PreparedWorkload {
  const { config, init, run } = ctx;
  const batches = keyChooser('sequential', loadTxnCount(config), init.index, init.workers);
  const clients = unaryClients(ctx, init.clients, (conn) => async () => {
    const first = batches.next() * config.batch;
    const end = Math.min(first + config.batch, config.keySpace);
    const random = randomFillSync(Buffer.allocUnsafe((end - first) * config.valSize));
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let i = first; i < end; i++) {
      keys.push(ctx.keys.key(i));
      values.push(random.subarray((i - first) * config.valSize, (i - first + 1) * config.valSize));
    }
    await conn.unary(PATHS.txn, ctx.codec.putTxn(keys, values), timeout(ctx));
    if (run.phase === 'measure') run.count('keys', keys.length);
    return null;
  });
  return { path: PATHS.txn, clients, untilStopped: false, close: () => {} };
}

/**
 * N watchers on one prefix (spread over this worker's streams) and putters writing under it. Each
 * put carries its send time (wall-clock ms, float64 LE) in the value's first 8 bytes, so every
 * event measures put-to-event latency wherever the put came from.
 */
async function prepareWatch(ctx: WorkerContext): Promise<PreparedWorkload> {
  const { init, config, run } = ctx;
  const prefix = Buffer.from(config.keyPrefix);
  const create = encodeWatchCreate(prefix, prefixRangeEnd(prefix));
  let created = 0;
  let closing = false;
  let onCreated: () => void = () => {};
  // One scan state for every message: 100,000 events a second must not each allocate.
  const flags: WatchFlags = { created: false, canceled: false, cancelReason: '' };
  let eventLatency: Histogram | null = null;
  let measuring = false;
  let now = 0;
  let events = 0;
  const onValue = (buffer: Buffer, start: number, end: number): void => {
    if (!measuring || end - start < 8) return;
    const sentAt = buffer.readDoubleLE(start);
    if (sentAt < run.measureStartWall) return;
    eventLatency ??= run.histogram('event');
    eventLatency.record((now - sentAt) * 1000);
    events++;
  };
  const streams = Array.from({ length: init.watchStreams }, (_, s) => {
    const stream = connFor(ctx, s).bidi(PATHS.watch);
    stream.on('data', (bytes: Buffer) => {
      measuring = run.phase === 'measure';
      if (measuring) {
        now = wallMs();
        events = 0;
      }
      scanWatch(bytes, flags, onValue);
      if (flags.created && ++created === init.watchers) onCreated();
      if (flags.canceled) ctx.fatal(`a watch was canceled by the server: ${flags.cancelReason}`);
      if (events > 0) run.count('events', events);
    });
    stream.on('error', (error) => {
      if (closing) return;
      const rpc = new RpcError(error.code ?? 2, error.message);
      ctx.fatal(rpc.code === 12 ? `the server does not implement ${PATHS.watch}` : `watch stream failed: ${rpc.message}`);
    });
    return stream;
  });
  const allCreated = new Promise<void>((resolve, reject) => {
    onCreated = resolve;
    if (init.watchers === 0) resolve();
    setTimeout(() => reject(new FatalBenchError(`only ${created} of ${init.watchers} watches created within ${SETUP_TIMEOUT_MS} ms`)), SETUP_TIMEOUT_MS).unref();
  });
  for (let w = 0; w < init.watchers; w++) streams[w % streams.length].write(create);
  await allCreated;

  const filler = makeValue(config.valSize);
  const clients = unaryClients(ctx, init.clients, (conn) => async () => {
    const value = Buffer.from(filler);
    value.writeDoubleLE(wallMs(), 0);
    const response = await conn.unary(PATHS.put, ctx.codec.put(ctx.keys.key(ctx.chooser.next()), value), timeout(ctx));
    ctx.codec.consume('put', response);
    return null;
  });
  const close = () => {
    closing = true;
    for (const stream of streams) stream.cancel();
  };
  return { path: PATHS.put, clients, untilStopped: true, close };
}

/** Each client grants a lease, then sends keepalives on its own stream, one at a time. */
async function prepareLease(ctx: WorkerContext): Promise<PreparedWorkload> {
  const grantRequest = encodeLeaseGrant(ctx.config.leaseTtlSec);
  const exchanges = await Promise.all(
    Array.from({ length: ctx.init.clients }, async (_, i) => {
      const conn = connFor(ctx, i);
      let response: Buffer;
      try {
        response = await conn.unary(PATHS.leaseGrant, grantRequest, SETUP_TIMEOUT_MS);
      } catch (error) {
        if (error instanceof RpcError && error.code === 12) throw new FatalBenchError(`the server does not implement ${PATHS.leaseGrant}`);
        throw error;
      }
      const grant = decodeLeaseGrant(response);
      if (grant.error !== '' || grant.rawId.length === 0) throw new FatalBenchError(`LeaseGrant failed: ${grant.error || 'no ID'}`);
      return { exchange: new StreamExchange(conn.bidi(PATHS.leaseKeepAlive)), request: encodeLeaseKeepAlive(grant.rawId) };
    }),
  );
  const clients = exchanges.map(({ exchange, request }): ClientOp => async () => {
    const ttl = decodeLeaseKeepAliveTtl(await exchange.exchange(request));
    if (ttl <= 0) throw new Error('lease expired (keepalive answered TTL 0)');
    return null;
  });
  return { path: PATHS.leaseKeepAlive, clients, untilStopped: false, close: () => exchanges.forEach((e) => e.exchange.close()) };
}

export async function prepareWorkload(ctx: WorkerContext): Promise<PreparedWorkload> {
  switch (ctx.config.workload) {
    case 'put':
      return preparePut(ctx);
    case 'get':
      return prepareGet(ctx);
    case 'mixed':
      return prepareMixed(ctx);
    case 'txn':
      return prepareTxn(ctx);
    case 'watch':
      return prepareWatch(ctx);
    case 'lease':
      return prepareLease(ctx);
    case 'load':
      return prepareLoad(ctx);
  }
}

/** A closed loop: one operation in flight, paced by the worker's rate, until the run says stop. */
export async function clientLoop(run: RunState, op: ClientOp, path: string): Promise<void> {
  while (true) {
    const measured = run.begin();
    if (measured === null) return;
    const wait = run.pace();
    if (wait !== null) await wait;
    const startPerf = performance.now();
    try {
      run.succeeded(await op(), startPerf, measured);
    } catch (error) {
      run.failed(error, path, measured);
    }
  }
}
