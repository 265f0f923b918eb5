'use strict';
// The ${{ values.name }} HTTP application: `/` greets, `/healthz` answers the Kubernetes probes.

const express = require('express');

const SERVICE_NAME = '${{ values.name }}';

function createApp() {
  const app = express();
  app.disable('x-powered-by');
  app.get('/', (req, res) => {
    res.json({ service: SERVICE_NAME, message: `Hello from ${SERVICE_NAME}` });
  });
  app.get('/healthz', (req, res) => {
    res.json({ status: 'ok' });
  });
  app.use((req, res) => {
    res.status(404).json({ error: 'not found', path: req.path });
  });
  return app;
}

module.exports = { createApp, SERVICE_NAME };
