// Keeps docs/COMPATIBILITY.md honest: every RPC of the etcd protos is listed there, and a real
// Tessera cluster answers each one as its status says (`not yet` = UNIMPLEMENTED, `supported` and
// `partial` = anything else). Rows marked `separate issue` are probed last and not asserted, but no
// request may take a node down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { probeEndpoint } from '../../src/cli/index.ts';
import { ProcessCluster } from '../support/cluster.ts';
import { allRpcs, probe } from './rpc-probe.ts';
import type { ProbeResult, RpcMethod } from './rpc-probe.ts';

type Status = 'supported' | 'partial' | 'not yet' | 'separate issue';

/** The RPC table of docs/COMPATIBILITY.md: `| \`pkg.Service/Method\` | status | notes |`. */
function documentedStatuses(): Map<string, Status> {
  const doc = readFileSync(new URL('../../docs/COMPATIBILITY.md', import.meta.url), 'utf8');
  const rows = new Map<string, Status>();
  for (const match of doc.matchAll(/^\| `([\w.]+\/\w+)` \| (supported|partial|not yet|separate issue) \|/gm)) {
    assert.ok(!rows.has(match[1]), `${match[1]} is listed twice`);
    rows.set(match[1], match[2] as Status);
  }
  return rows;
}

describe('the RPC table of docs/COMPATIBILITY.md', { timeout: 120_000 }, () => {
  const documented = documentedStatuses();
  const rpcs = allRpcs();
  let cluster: ProcessCluster;
  const results = new Map<string, ProbeResult>();

  before(async () => {
    cluster = await ProcessCluster.start({ logLevel: 'warn', exitWithParent: true });
    const last = (rpc: RpcMethod) => (documented.get(rpc.name) === 'separate issue' ? 1 : 0);
    for (const rpc of [...rpcs].sort((a, b) => last(a) - last(b))) results.set(rpc.name, await probe(cluster.endpoint(0), rpc));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('lists every RPC of the protos, and nothing else', () => {
    assert.ok(rpcs.length >= 45, `the protos define ${rpcs.length} RPCs`);
    assert.deepEqual([...documented.keys()].sort(), rpcs.map((rpc) => rpc.name).sort());
  });

  test('the cluster answers each RPC as its status says', () => {
    const wrong: string[] = [];
    for (const [name, status] of documented) {
      const result = results.get(name);
      if (result === undefined || status === 'separate issue') continue;
      if (result.implemented !== (status !== 'not yet')) wrong.push(`${name}: documented ${status}, answered ${result.answer}`);
    }
    assert.deepEqual(wrong, []);
  });

  test('no request took a node down', async () => {
    const down: string[] = [];
    for (let i = 0; i < cluster.nodes.length; i++) {
      try {
        await probeEndpoint(cluster.endpoint(i), 3_000);
      } catch {
        down.push(`${cluster.nodes[i].name}: ${cluster.log(i).trim().split('\n').slice(-2).join('\n')}`);
      }
    }
    assert.deepEqual(down, []);
  });
});
