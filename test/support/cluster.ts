// Real-process clusters for tests live with the chaos tooling (src/chaos/cluster.ts), which ships
// them for `npm run chaos`; tests import them from here.
export { freePort, ProcessCluster } from '../../src/chaos/index.ts';
export type { ClusterNode, ProcessClusterOptions } from '../../src/chaos/index.ts';
