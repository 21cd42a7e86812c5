// Reads V8 .cpuprofile files: self time by package/file and by function, and inclusive time of
// Tessera's own functions, as text (for bench/profile-top.ts and bench/profile.ts).

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

const SPECIAL = ['(idle)', '(program)', '(garbage collector)'];

function place(url: string): string {
  if (url === '') return '(native/V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  return src >= 0 ? url.slice(src + 1) : url.replace(/^file:\/\//, '');
}

function functionLabel(frame: CpuProfile['nodes'][number]['callFrame']): string {
  const where = place(frame.url);
  return `${frame.functionName || '(anonymous)'}  ${where}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
}

function addTo<K>(map: Map<K, number>, key: K, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

/** Self and inclusive microseconds per profile node. */
function times(profile: CpuProfile): { self: Map<number, number>; inclusive: Map<number, number> } {
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) addTo(self, profile.samples[i], profile.timeDeltas[i + 1] ?? 0);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const inclusive = new Map<number, number>();
  const visit = (id: number): number => {
    const node = byId.get(id);
    let total = self.get(id) ?? 0;
    for (const child of node?.children ?? []) total += visit(child);
    inclusive.set(id, total);
    return total;
  };
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  for (const node of profile.nodes) if (!childIds.has(node.id)) visit(node.id);
  return { self, inclusive };
}

export function summarizeProfile(profile: CpuProfile, top: number): string {
  const { self, inclusive } = times(profile);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    total += us;
    if (frame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    addTo(byFunction, functionLabel(frame), us);
    addTo(byPlace, SPECIAL.includes(frame.functionName) ? frame.functionName : place(frame.url), us);
  }
  // Inclusive time of Tessera's functions, counted once per stack (recursion would double count).
  const ownInclusive = new Map<string, number>();
  for (const node of profile.nodes) {
    if (!node.callFrame.url.includes('/src/') || node.callFrame.url.includes('node_modules')) continue;
    addTo(ownInclusive, functionLabel(node.callFrame), inclusive.get(node.id) ?? 0);
  }
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)}%`;
  const list = (map: Map<string, number>) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => `  ${pct(us)}  ${name}`);
  return [
    `sampled ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s; percentages are of busy time`,
    'self time by package/file:',
    ...list(byPlace),
    'hottest functions (self time):',
    ...list(byFunction),
    'Tessera functions (inclusive time):',
    ...list(ownInclusive),
  ].join('\n');
}
