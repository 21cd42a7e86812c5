// etcdctl's own auth flow against a real node: `user add root`, `auth enable` (which adds the root
// role and grants it when etcd says the root user lacks it), then `--user root:pw`; without
// credentials etcdctl gets etcd's "user name is empty", with a wrong password "authentication failed".
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ProcessCluster } from '../support/cluster.ts';
import { hasEtcdctl } from './support.ts';

describe('etcdctl with auth (real process)', { timeout: 120_000 }, () => {
  let cluster: ProcessCluster | null = null;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const etcdctl = (...args: string[]) => {
    assert.ok(cluster !== null);
    const result = spawnSync('etcdctl', [`--endpoints=${cluster.endpoint(0)}`, '--dial-timeout=3s', '--command-timeout=10s', ...args], {
      encoding: 'utf8',
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 30_000,
    });
    return { status: result.status, out: `${result.stdout}${result.stderr}` };
  };

  before(async () => {
    if (hasEtcdctl) cluster = await ProcessCluster.start({ nodes: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('user add root, auth enable, --user root:pw get/put; refused without or with wrong credentials', (t) => {
    if (!hasEtcdctl) {
      t.diagnostic('SKIP: etcdctl not installed');
      console.log('SKIP: etcdctl not installed');
      return;
    }
    assert.equal(etcdctl('put', 'greeting', 'hello').status, 0);
    const add = etcdctl('user', 'add', `root:${password}`);
    assert.equal(add.status, 0, add.out);
    assert.match(add.out, /User root created/);
    const enable = etcdctl('auth', 'enable');
    assert.equal(enable.status, 0, enable.out);
    assert.match(enable.out, /Authentication Enabled/);

    const get = etcdctl(`--user=root:${password}`, 'get', 'greeting', '--print-value-only');
    assert.equal(get.status, 0, get.out);
    assert.equal(get.out.trim(), 'hello');
    const put = etcdctl(`--user=root:${password}`, 'put', 'greeting', 'again');
    assert.equal(put.status, 0, put.out);

    const anonymous = etcdctl('get', 'greeting');
    assert.notEqual(anonymous.status, 0);
    assert.match(anonymous.out, /user name is empty/);
    assert.doesNotMatch(anonymous.out, /hello|again/);
    const wrong = etcdctl('--user=root:not-it', 'get', 'greeting');
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.out, /authentication failed, invalid user ID or password/);

    const roles = etcdctl(`--user=root:${password}`, 'user', 'get', 'root');
    assert.match(roles.out, /Roles: root/);
    const disable = etcdctl(`--user=root:${password}`, 'auth', 'disable');
    assert.equal(disable.status, 0, disable.out);
    assert.equal(etcdctl('get', 'greeting', '--print-value-only').out.trim(), 'again');
  });
});
