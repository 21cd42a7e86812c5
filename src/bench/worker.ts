// A benchmark worker thread: opens its own gRPC connections, prepares its share of the workload,
// then runs closed-loop clients through the phases the main thread announces (start = warm-up,
// measure, stop) and posts progress and its histograms back.
import { parentPort, workerData } from 'node:worker_threads';
import { loadCodec } from './codec.ts';
import { keyChooser, KeySpace } from './keys.ts';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.ts';
import { openConnection } from './rpc.ts';
import { FatalBenchError, RunState } from './run-state.ts';
import type { PreparedWorkload, WorkerContext } from './workloads.ts';
import { clientLoop, prepareWorkload } from './workloads.ts';

const PROGRESS_INTERVAL_MS = 200;
/** After stop, how long in-flight calls may take before the worker reports without them. */
const STOP_GRACE_MS = 2_000;
const CONNECT_TIMEOUT_MS = 10_000;

const port = parentPort;
if (port === null) throw new Error('src/bench/worker.ts runs only as a worker thread');
const init = workerData as WorkerInit;

function post(message: FromWorker): void {
  port?.postMessage(message);
}

let failed = false;

function fatal(message: string): never {
  if (!failed) post({ type: 'fatal', message });
  failed = true;
  // Give the message a turn to leave, then end; the main thread terminates the rest of the run.
  setTimeout(() => process.exit(1), 50);
  throw new FatalBenchError(message);
}

async function main(): Promise<void> {
  const config = init.config;
  const run = new RunState(init.total, init.rate);
  const conns = await Promise.all(init.connEndpoints.map((endpoint) => openConnection(config.transport, endpoint)));
  await Promise.all(conns.map((conn) => conn.waitReady(CONNECT_TIMEOUT_MS)));
  const ctx: WorkerContext = {
    init,
    config,
    run,
    conns,
    codec: await loadCodec(config.codec),
    keys: new KeySpace(config.keyPrefix, config.keySize, config.keySpace),
    chooser: keyChooser(config.distribution, config.keySpace, init.index, init.workers),
    fatal,
  };
  const workload = await prepareWorkload(ctx);
  const stopped = new Promise<void>((resolve) => {
    port?.on('message', (message: ToWorker) => {
      if (message.type === 'start') startClients(run, workload, message.warmup);
      else if (message.type === 'measure') run.startMeasuring();
      else {
        run.phase = 'stopped';
        resolve();
      }
    });
  });
  const progress = setInterval(() => {
    post({ type: 'progress', ops: run.ops, errors: run.errors, events: run.counters.events ?? 0, claimed: run.claimed });
  }, PROGRESS_INTERVAL_MS);
  post({ type: 'ready' });
  await (workload.untilStopped ? stopped : Promise.race([stopped, clientsDone]));
  if (run.phase === 'stopped') await Promise.race([clientsDone, new Promise((r) => setTimeout(r, STOP_GRACE_MS))]);
  clearInterval(progress);
  post({ type: 'done', result: run.result() });
  workload.close();
  for (const conn of conns) conn.close();
}

let resolveClientsDone: () => void = () => {};
const clientsDone = new Promise<void>((resolve) => (resolveClientsDone = resolve));

function startClients(run: RunState, workload: PreparedWorkload, warmup: boolean): void {
  if (warmup) run.phase = 'warmup';
  else run.startMeasuring();
  const loops = workload.clients.map((op) => clientLoop(run, op, workload.path));
  Promise.all(loops).then(
    () => resolveClientsDone(),
    (error: unknown) => fatal(error instanceof Error ? error.message : String(error)),
  );
}

main().catch((error: unknown) => {
  if (error instanceof FatalBenchError) fatal(error.message);
  fatal(error instanceof Error ? `${error.message}` : String(error));
});
