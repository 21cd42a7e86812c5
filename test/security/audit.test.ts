// Audit lines name who made each change: an in-process node's log is captured line by line while
// users, roles, permissions and the enabled flag change (through the real gRPC API), before auth is
// on ("anonymous": nobody is authenticated yet) and after (the root user), refused changes included;
// no line carries a password or a token.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { probeEndpoint } from '../../src/cli/index.ts';
import { parseNodeConfig, TesseraNode } from '../../src/server/index.ts';
import { freePort } from '../support/cluster.ts';
import { AuthTestClient, failure } from './auth-client.ts';

const b = (s: string) => Buffer.from(s);
const rootPassword = `root-${randomBytes(8).toString('hex')}`;
const alicePassword = `alice-${randomBytes(8).toString('hex')}`;
const aliceNewPassword = `alice-new-${randomBytes(8).toString('hex')}`;

interface AuditLine {
  component?: string;
  event?: string;
  actor?: string;
  user?: string;
  role?: string;
  permission?: string;
  result?: string;
}

describe('audit lines name the actor', { timeout: 120_000 }, () => {
  const lines: string[] = [];
  let dir: string;
  let node: TesseraNode;
  let client: AuthTestClient;
  let endpoint: string;
  const audit = (): AuditLine[] => lines.map((line) => JSON.parse(line) as AuditLine).filter((line) => line.component === 'audit');
  const changes = () => audit().filter((line) => line.result !== undefined);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-audit-'));
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const config = parseNodeConfig({
      name: 'a1',
      dataDir: join(dir, 'a1'),
      listenClientUrls: `http://127.0.0.1:${clientPort}`,
      listenPeerUrls: `http://127.0.0.1:${peerPort}`,
      initialCluster: `a1=http://127.0.0.1:${peerPort}`,
      unsafeNoFsync: true,
      heartbeatInterval: 20,
      electionTimeout: 200,
    });
    const sink = { write: (line: string) => void lines.push(line) };
    node = await TesseraNode.start(config, pino({ level: 'info' }, sink));
    endpoint = `127.0.0.1:${clientPort}`;
    await probeEndpoint(endpoint, 20_000);
    client = new AuthTestClient(endpoint);
  });
  after(async () => {
    client?.close();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('before auth is enabled the actor is "anonymous"; afterwards the authenticated user', async () => {
    await client.call('Auth', 'userAdd', { name: 'root', password: rootPassword });
    await client.call('Auth', 'userGrantRole', { user: 'root', role: 'root' });
    await client.call('Auth', 'roleAdd', { name: 'app' });
    await client.call('Auth', 'roleGrantPermission', { name: 'app', perm: { permType: 'READWRITE', key: b('/app/'), rangeEnd: b('/app0') } });
    await client.call('Auth', 'userAdd', { name: 'alice', password: alicePassword });
    await client.call('Auth', 'userGrantRole', { user: 'alice', role: 'app' });
    await client.call('Auth', 'authEnable', {});
    const before = changes();
    assert.deepEqual(
      before.map((l) => [l.event, l.actor, l.user ?? l.role, l.result]),
      [
        ['userAdd', 'anonymous', 'root', 'ok'],
        ['userGrantRole', 'anonymous', 'root', 'ok'],
        ['roleAdd', 'anonymous', 'app', 'ok'],
        ['roleGrantPermission', 'anonymous', 'app', 'ok'],
        ['userAdd', 'anonymous', 'alice', 'ok'],
        ['userGrantRole', 'anonymous', 'alice', 'ok'],
        ['enable', 'anonymous', undefined, 'ok'],
      ],
    );
    assert.equal(before[3].permission, 'READWRITE [/app/, /app0)');

    await client.login('root', rootPassword);
    await client.call('Auth', 'userChangePassword', { name: 'alice', password: aliceNewPassword });
    await client.call('Auth', 'roleRevokePermission', { role: 'app', key: b('/app/'), rangeEnd: b('/app0') });
    await client.call('Auth', 'userRevokeRole', { name: 'alice', role: 'app' });
    await client.call('Auth', 'roleDelete', { role: 'app' });
    const refused = await failure(client.call('Auth', 'roleDelete', { role: 'nope' }));
    assert.equal(refused.details, 'etcdserver: role name not found');
    await client.call('Auth', 'userDelete', { name: 'alice' });
    await client.call('Auth', 'authDisable', {});
    assert.deepEqual(
      changes().slice(before.length).map((l) => [l.event, l.actor, l.user ?? l.role, l.result]),
      [
        ['userChangePassword', 'root', 'alice', 'ok'],
        ['roleRevokePermission', 'root', 'app', 'ok'],
        ['userRevokeRole', 'root', 'alice', 'ok'],
        ['roleDelete', 'root', 'app', 'ok'],
        ['roleDelete', 'root', 'nope', 'etcdserver: role name not found'],
        ['userDelete', 'root', 'alice', 'ok'],
        ['disable', 'root', undefined, 'ok'],
      ],
    );
  });

  it('a refused admin call is audited with who tried; no line holds a password or a token', async () => {
    await client.call('Auth', 'userAdd', { name: 'bob', password: alicePassword });
    await client.call('Auth', 'authEnable', {});
    const bob = new AuthTestClient(endpoint);
    const denied = await failure(bob.call('Auth', 'userDelete', { name: 'root' }));
    assert.equal(denied.details, 'etcdserver: user name is empty');
    await bob.login('bob', alicePassword);
    await failure(bob.call('Auth', 'userAdd', { name: 'mallory', password: 'x' }));
    bob.close();
    const refusals = audit().filter((l) => l.event === 'permission_denied' || l.event === 'no_identity');
    assert.ok(refusals.some((l) => l.event === 'permission_denied' && l.user === 'bob'), 'the refusal names bob');
    const all = lines.join('\n');
    for (const secret of [rootPassword, alicePassword, aliceNewPassword, client.token ?? 'no token']) {
      assert.equal(all.includes(secret), false, `a secret reached the log: ${secret.slice(0, 6)}...`);
    }
  });
});
