// A long bidi stream through wisp: sends one message every INTERVAL ms for
// SECONDS s and checks each echo. Prints "ok N" or "fail: reason".
//   node grpc_long_bidi.js HOST:PORT SECONDS [INTERVAL_MS]
'use strict';
const { grpc, loadTestService, channelOptions } = require('./grpc_common');
const [target, seconds, interval = '200'] = process.argv.slice(2);
const Test = loadTestService().Test;
const client = new Test(target, grpc.credentials.createInsecure(), channelOptions);
const call = client.Bidi();
let sent = 0, got = 0, failed = false;
const fail = (why) => { if (!failed) { failed = true; console.log(`fail: ${why}`); process.exit(1); } };
call.on('data', (m) => { if (m.text !== `m${got}`) fail(`echo ${got} was ${m.text}`); got++; });
call.on('error', (e) => fail(`${e.code} ${e.details}`));
call.on('end', () => { if (got === sent) { console.log(`ok ${got}`); process.exit(0); } else fail(`got ${got} of ${sent}`); });
const timer = setInterval(() => call.write({ text: `m${sent++}` }), Number(interval));
setTimeout(() => { clearInterval(timer); setTimeout(() => call.end(), 500); }, Number(seconds) * 1000);
setTimeout(() => fail('timeout'), Number(seconds) * 1000 + 15000).unref();
