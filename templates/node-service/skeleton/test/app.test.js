'use strict';
// Starts the app on a free local port and calls its endpoints (`npm test`).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createApp, SERVICE_NAME } = require('../src/app');

let server;
let base;

before(async () => {
  server = createApp().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test('/ names the service', async () => {
  const response = await fetch(`${base}/`);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), {
    service: SERVICE_NAME,
    message: `Hello from ${SERVICE_NAME}`,
  });
});

test('/healthz is ok', async () => {
  const response = await fetch(`${base}/healthz`);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: 'ok' });
});

test('unknown paths are 404', async () => {
  const response = await fetch(`${base}/nope`);
  assert.equal(response.status, 404);
});
