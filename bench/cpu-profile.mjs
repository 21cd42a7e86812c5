// CPU profiles of Tessera node processes for benchmarks, where `--cpu-prof` cannot go through
// NODE_OPTIONS (Node refuses it there). Load with
//   TESSERA_CPU_PROFILE_DIR=/tmp/prof NODE_OPTIONS="--import /abs/path/bench/cpu-profile.mjs" tessera dev ...
// Each `tessera start` process profiles from start to exit (SIGTERM/SIGINT shut it down cleanly)
// and writes <dir>/<node name>-<pid>.cpuprofile. With TESSERA_CPU_PROFILE_ON_SIGNAL=1 it waits for
// SIGUSR2 to start and writes at the next SIGUSR2 instead, so the profile covers only the load.
// Other processes (tessera dev itself) are left alone.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.TESSERA_CPU_PROFILE_DIR;
const onSignal = process.env.TESSERA_CPU_PROFILE_ON_SIGNAL === '1';
const args = process.argv.slice(2);

if (dir && args.includes('start')) {
  const nameIndex = args.indexOf('--name');
  const name = nameIndex >= 0 ? args[nameIndex + 1] : 'node';
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  let running = false;
  let written = 0;
  const start = () => {
    session.post('Profiler.start');
    running = true;
  };
  // A local inspector session answers synchronously, so this also works inside 'exit'.
  const stop = () => {
    if (!running) return;
    running = false;
    session.post('Profiler.stop', (error, result) => {
      if (error) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}-${process.pid}-${++written}.cpuprofile`), JSON.stringify(result.profile));
    });
  };
  if (onSignal) process.on('SIGUSR2', () => (running ? stop() : start()));
  else start();
  process.on('exit', stop);
}
