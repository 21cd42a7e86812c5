// The node's HTTP side door (etcd's --listen-metrics-urls): /metrics for Prometheus, /health for
// load balancers, and, only with --experimental-fault-injection, /debug/faults for chaos tests.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { PartitionDirection, TransportFaults } from '../transport/index.ts';
import type { NodeMetrics } from './metrics.ts';

export interface HttpEndpointOptions {
  host: string;
  port: number;
  metrics: NodeMetrics;
  health: () => { health: boolean; reason: string };
  faults: TransportFaults | null;
  logger: Logger;
}

/** Largest request body accepted (fault commands are tiny). */
const maxBodyBytes = 64 * 1024;

export class HttpEndpoint {
  private server: Server | null = null;
  private readonly active = new Map<string, PartitionDirection>();

  constructor(private readonly options: HttpEndpointOptions) {}

  async start(): Promise<number> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => reply(res, 500, { error: (error as Error).message }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.server = server;
    const address = server.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': this.options.metrics.registry.contentType });
      res.end(await this.options.metrics.registry.metrics());
      return;
    }
    if (req.method === 'GET' && (path === '/health' || path === '/readyz' || path === '/livez')) {
      const { health, reason } = this.options.health();
      reply(res, health ? 200 : 503, { health: String(health), reason });
      return;
    }
    if (path === '/debug/faults') {
      if (!this.options.faults) return reply(res, 404, { error: 'fault injection is off (start with --experimental-fault-injection)' });
      if (req.method === 'GET') return reply(res, 200, this.describe());
      if (req.method === 'POST') return this.applyFault(await readJson(req), res);
    }
    reply(res, 404, { error: `no route ${req.method} ${path}; try GET /metrics or /health` });
  }

  private applyFault(body: unknown, res: ServerResponse): void {
    const faults = this.options.faults!;
    const command = (body ?? {}) as Record<string, unknown>;
    if (command.heal === true) {
      faults.heal();
      this.active.clear();
    } else if (Array.isArray(command.partition)) {
      const direction = (command.direction ?? 'both') as PartitionDirection;
      if (!['both', 'inbound', 'outbound'].includes(direction)) return reply(res, 400, { error: 'direction must be both, inbound or outbound' });
      for (const peer of command.partition) {
        const id = Number(peer);
        if (!Number.isSafeInteger(id) || id <= 0) return reply(res, 400, { error: `not a member id: ${String(peer)}` });
        faults.partition(id, direction);
        this.active.set(String(id), direction);
      }
    } else if (typeof command.delay === 'object' && command.delay !== null) {
      const { peer, ms } = command.delay as { peer?: unknown; ms?: unknown };
      try {
        faults.setDelay(Number(peer), Number(ms));
      } catch (error) {
        return reply(res, 400, { error: (error as Error).message });
      }
    } else {
      return reply(res, 400, { error: 'expected {"partition":[ids],"direction":...}, {"heal":true} or {"delay":{"peer":id,"ms":n}}' });
    }
    this.options.logger.warn({ fault: command }, 'fault injected');
    reply(res, 200, this.describe());
  }

  private describe(): { partitions: Record<string, PartitionDirection> } {
    return { partitions: Object.fromEntries(this.active) };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
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
