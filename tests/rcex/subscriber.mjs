// RingCentral's official SDK (@rc-ex/core + @rc-ex/ws), unchanged, against the emulator:
// logs in with a JWT, makes a REST call over the socket, subscribes to the message store,
// and prints one JSON line per thing that happens (the Python test reads them).
import RingCentral from '@rc-ex/core';
import WebSocketExtension from '@rc-ex/ws';

const [server, clientId, clientSecret, jwt] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const rc = new RingCentral({ server, clientId, clientSecret });
await rc.authorize({ jwt });
const ws = new WebSocketExtension({ restOverWebSocket: true });
await rc.installExtension(ws);
ws.eventEmitter.on('autoRecoverSuccess', () => say({ recovered: true }));
ws.eventEmitter.on('autoRecoverFailed', () => say({ recoverFailed: true }));
ws.eventEmitter.on('autoRecoverError', (e) => say({ recoverError: String(e) }));
const ext = await rc.restapi().account().extension().get();
say({ rest: ext.id });
const sub = await ws.subscribe(['/restapi/v1.0/account/~/extension/~/message-store'],
  (event) => say({ event }));
say({ subscribed: sub.subscriptionInfo.id });
process.stdin.on('data', () => {});
process.stdin.on('end', async () => { await sub.revoke(); await ws.revoke(); process.exit(0); });
