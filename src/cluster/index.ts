// Cluster metadata: the range table (and, with sharding, placement and rebalancing).
export { RangeTable } from './range-table.ts';
export type { RangeDescriptor } from './range-table.ts';
