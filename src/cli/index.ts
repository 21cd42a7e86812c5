// The CLI layer: commands that start nodes and local clusters (entry point: main.ts).
export { runDev, devClientPort } from './dev.ts';
export { runStart } from './start.ts';
export { probeEndpoint } from './probe.ts';
export type { ProbeTls } from './probe.ts';
