// Starts an ApiServer on a free port over the real MvccStore (StoreBackend) with whatever other
// backends a test passes, and an EtcdClient connected to it.
import { pino } from 'pino';
import { ApiServer } from '../../src/api/index.ts';
import type { ApiServerOptions } from '../../src/api/index.ts';
import { StoreBackend } from './backends.ts';
import { EtcdClient } from './client.ts';

export async function startApi(extra: (kv: StoreBackend) => Partial<ApiServerOptions> = () => ({})) {
  const backend = new StoreBackend();
  const server = new ApiServer({
    backend,
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: 'silent' }),
    ...extra(backend),
  });
  const port = await server.start();
  const client = new EtcdClient(`127.0.0.1:${port}`);
  const stop = async () => {
    client.close();
    await server.stop();
  };
  return { backend, server, client, port, address: `127.0.0.1:${port}`, stop };
}

export type Api = Awaited<ReturnType<typeof startApi>>;

export const b = (s: string) => Buffer.from(s);
export const str = (bytes: Uint8Array) => Buffer.from(bytes).toString();
