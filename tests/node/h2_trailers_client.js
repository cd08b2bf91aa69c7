// Sends POST /trailers-echo with a request trailer through a plain h2c URL
// and prints the response trailers, one "name: value" per line.
'use strict';
const http2 = require('http2');
const base = process.argv[2];
const session = http2.connect(base);
session.on('error', (e) => { console.error('session error', e.message); process.exit(1); });
const req = session.request({ ':method': 'POST', ':path': '/trailers-echo' }, { waitForTrailers: true });
req.on('wantTrailers', () => req.sendTrailers({ 'x-req-trailer': 'hello' }));
req.on('trailers', (t) => { for (const [k, v] of Object.entries(t)) console.log(`${k}: ${v}`); });
req.on('response', (h) => console.log(`:status: ${h[':status']}`));
req.resume();
req.on('end', () => session.close());
req.on('error', (e) => { console.error('stream error', e.message); process.exit(1); });
req.end('body');
setTimeout(() => { console.error('timeout'); process.exit(1); }, 10000).unref();
