// The node's HTTP side door (etcd's --listen-metrics-urls): /metrics for Prometheus, /health for
// load balancers, and, only with --experimental-fault-injection, /debug/faults for chaos tests:
// network partitions and delays, slow or failing fsyncs, and a skewed clock.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { StorageFaults, StorageFaultState } from '../storage/index.ts';
import type { PartitionDirection, TransportFaults } from '../transport/index.ts';
import type { NodeMetrics } from './metrics.ts';
import { ETCD_API_VERSION } from './services.ts';

/** What /debug/faults can break on this node. */
export interface FaultSeams {
  transport: TransportFaults;
  storage: StorageFaults;
  /** Scales the node's timers (Raft ticks, lease clock, request deadlines): 2 = twice as fast. */
  clock: { readonly rate: number; setRate(rate: number): void };
}

interface FaultsView {
  partitions: Record<string, PartitionDirection>;
  fsync: StorageFaultState;
  clockRate: number;
}

export interface HttpEndpointOptions {
  host: string;
  port: number;
  metrics: NodeMetrics;
  health: () => { health: boolean; reason: string };
  faults: FaultSeams | null;
  logger: Logger;
  /** An https:// metrics URL: serve over TLS with these options (etcd uses the client certificate). */
  tls?: TlsOptions;
}

/** Largest request body accepted (fault commands are tiny). */
const maxBodyBytes = 64 * 1024;

export class HttpEndpoint {
  private server: Server | HttpsServer | null = null;
  private readonly active = new Map<string, PartitionDirection>();

  constructor(private readonly options: HttpEndpointOptions) {}

  async start(): Promise<number> {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => reply(res, 500, { error: (error as Error).message }));
    };
    const tls = this.options.tls;
    const server = tls === undefined ? createServer(handler) : createHttpsServer(tls, handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.server = server;
    const address = server.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  /** New certificates for new connections (certificate reload); only for an https:// endpoint. */
  setSecureContext(options: TlsOptions): void {
    if (this.server !== null && 'setSecureContext' in this.server) this.server.setSecureContext(options);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (await serveOpsRoute(req, res, this.options)) return;
    if (path === '/debug/faults') {
      if (!this.options.faults) return reply(res, 404, { error: 'fault injection is off (start with --experimental-fault-injection)' });
      if (req.method === 'GET') return reply(res, 200, this.describe());
      if (req.method === 'POST') return this.applyFault(await readJson(req), res);
    }
    reply(res, 404, { error: `no route ${req.method} ${path}; try GET /metrics or /health` });
  }

  /**
   * One command per request: `{"partition":[ids],"direction":"both|inbound|outbound"}`,
   * `{"delay":{"peer":id,"ms":n}}`, `{"fsync":{"delayMs":[lo,hi]}}` (every commit that much
   * slower; `[0,0]` off), `{"fsync":{"fail":true}}` (the next commit fails: the node fail-stops),
   * `{"clock":{"rate":r}}` (timers at r times real time), `{"heal":true}` (all of them undone).
   */
  private applyFault(body: unknown, res: ServerResponse): void {
    const faults = this.options.faults!;
    const command = (body ?? {}) as Record<string, unknown>;
    if (command.heal === true) {
      faults.transport.heal();
      faults.storage.heal();
      faults.clock.setRate(1);
      this.active.clear();
    } else if (typeof command.fsync === 'object' && command.fsync !== null) {
      const error = applyFsyncFault(faults.storage, command.fsync as Record<string, unknown>);
      if (error !== null) return reply(res, 400, { error });
    } else if (typeof command.clock === 'object' && command.clock !== null) {
      try {
        faults.clock.setRate(Number((command.clock as { rate?: unknown }).rate));
      } catch (error) {
        return reply(res, 400, { error: (error as Error).message });
      }
    } else if (Array.isArray(command.partition)) {
      const direction = (command.direction ?? 'both') as PartitionDirection;
      if (!['both', 'inbound', 'outbound'].includes(direction)) return reply(res, 400, { error: 'direction must be both, inbound or outbound' });
      for (const peer of command.partition) {
        const id = Number(peer);
        if (!Number.isSafeInteger(id) || id <= 0) return reply(res, 400, { error: `not a member id: ${String(peer)}` });
        faults.transport.partition(id, direction);
        this.active.set(String(id), direction);
      }
    } else if (typeof command.delay === 'object' && command.delay !== null) {
      const { peer, ms } = command.delay as { peer?: unknown; ms?: unknown };
      try {
        faults.transport.setDelay(Number(peer), Number(ms));
      } catch (error) {
        return reply(res, 400, { error: (error as Error).message });
      }
    } else {
      return reply(res, 400, {
        error:
          'expected {"partition":[ids],"direction":...}, {"delay":{"peer":id,"ms":n}}, {"fsync":{"delayMs":[lo,hi]}}, ' +
          '{"fsync":{"fail":true}}, {"clock":{"rate":r}} or {"heal":true}',
      });
    }
    this.options.logger.warn({ fault: command }, 'fault injected');
    reply(res, 200, this.describe());
  }

  private describe(): FaultsView {
    const faults = this.options.faults!;
    return { partitions: Object.fromEntries(this.active), fsync: faults.storage.state(), clockRate: faults.clock.rate };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** `{"delayMs":[lo,hi]}` or `{"delayMs":n}`, or `{"fail":true}`; returns an error message or null. */
function applyFsyncFault(storage: StorageFaults, fsync: Record<string, unknown>): string | null {
  if (fsync.fail === true) {
    storage.failNextFsync();
    return null;
  }
  const delay = fsync.delayMs;
  const [lo, hi] = Array.isArray(delay) ? delay.map(Number) : [Number(delay), Number(delay)];
  try {
    storage.setFsyncDelay(lo, hi ?? lo);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * etcd's operational paths, served on the metrics URL and (as etcd does) on the client port beside
 * the JSON gateway: GET /metrics (Prometheus), /health (also /readyz, /livez), /version. True when
 * `req` was one of them and has been answered.
 */
export async function serveOpsRoute(
  req: IncomingMessage,
  res: ServerResponse,
  ops: Pick<HttpEndpointOptions, 'metrics' | 'health'>,
): Promise<boolean> {
  if (req.method !== 'GET') return false;
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/metrics') {
    res.writeHead(200, { 'content-type': ops.metrics.registry.contentType });
    res.end(await ops.metrics.registry.metrics());
    return true;
  }
  if (path === '/health' || path === '/readyz' || path === '/livez') {
    const { health, reason } = ops.health();
    reply(res, health ? 200 : 503, { health: String(health), reason });
    return true;
  }
  if (path === '/version') {
    reply(res, 200, { etcdserver: ETCD_API_VERSION, etcdcluster: ETCD_API_VERSION }); // etcd reports its minor version as the cluster's
    return true;
  }
  return false;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) throw new Error(`body larger than ${maxBodyBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.length === 0 ? {} : JSON.parse(text);
}
