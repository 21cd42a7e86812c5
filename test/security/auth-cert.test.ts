// With --client-cert-auth and auth enabled, a call without a token acts as the user named by its
// client certificate's CN (as etcd): unknown CN → permission denied; once that user exists with a
// /app/ role it reads /app/ and nothing else; a token, when given, takes precedence.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AuthTestClient, failure } from './auth-client.ts';
import { hasOpenssl, makeFixtures, SecureCluster } from './support.ts';
import type { Fixtures } from './support.ts';

const b = (s: string) => Buffer.from(s);

describe('client certificate CN as the user (real process)', { skip: hasOpenssl ? false : 'openssl not installed', timeout: 120_000 }, () => {
  let fx: Fixtures;
  let cluster: SecureCluster;
  let client: AuthTestClient;
  const rootPassword = `pw-${randomBytes(8).toString('hex')}`;

  before(async () => {
    fx = makeFixtures();
    cluster = await SecureCluster.start(fx, 1);
    const { cert, key } = fx.read(fx.certs.client);
    client = new AuthTestClient(cluster.endpoint(0), grpc.credentials.createSsl(fx.ca(), key, cert), {
      'grpc.ssl_target_name_override': 'localhost',
    });
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
    fx?.cleanup();
  });

  it('the CN is the user when no token is given', async () => {
    await client.call('KV', 'put', { key: b('/secret/x'), value: b('top') });
    await client.call('KV', 'put', { key: b('/app/a'), value: b('1') });
    await client.call('Auth', 'UserAdd', { name: 'root', password: rootPassword });
    await client.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    await client.call('Auth', 'AuthEnable', {});

    // CN tessera-dev-client is no user yet.
    const unknown = await failure(client.call('KV', 'Range', { key: b('/app/a') }));
    assert.equal(unknown.code, grpc.status.PERMISSION_DENIED);

    await client.login('root', rootPassword);
    await client.call('Auth', 'RoleAdd', { name: 'app' });
    await client.call('Auth', 'RoleGrantPermission', { name: 'app', perm: { permType: 'READ', key: b('/app/'), rangeEnd: b('/app0') } });
    await client.call('Auth', 'UserAdd', { name: 'tessera-dev-client', options: { noPassword: true } });
    await client.call('Auth', 'UserGrantRole', { user: 'tessera-dev-client', role: 'app' });
    // A user added with no_password cannot authenticate with one.
    const noPassword = await failure(client.call('Auth', 'Authenticate', { name: 'tessera-dev-client', password: '' }));
    assert.equal(noPassword.code, grpc.status.INVALID_ARGUMENT);

    client.token = null;
    assert.equal((await client.call('KV', 'Range', { key: b('/app/a') })).kvs.length, 1);
    assert.equal((await failure(client.call('KV', 'Range', { key: b('/secret/x') }))).code, grpc.status.PERMISSION_DENIED);
    assert.equal((await failure(client.call('KV', 'Put', { key: b('/app/a'), value: b('2') }))).code, grpc.status.PERMISSION_DENIED);
    // A bad token is not replaced by the certificate.
    client.token = 'not-a-token';
    assert.equal((await failure(client.call('KV', 'Range', { key: b('/app/a') }))).code, grpc.status.UNAUTHENTICATED);
  });
});
