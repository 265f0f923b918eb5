'use strict';
// Starts the service; PORT and HOST come from the environment. Stops cleanly on SIGTERM.

const { createApp, SERVICE_NAME } = require('./app');

const port = Number(process.env.PORT || ${{ values.port }});
const host = process.env.HOST || '0.0.0.0';

const server = createApp().listen(port, host, () => {
  console.log(`${SERVICE_NAME} listening on ${host}:${server.address().port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
  });
}
