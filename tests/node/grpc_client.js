#!/usr/bin/env node
// grpc_client.js - @grpc/grpc-js test client (insecure = h2c) for wisp tests.
//
//   node grpc_client.js --target HOST:PORT [--case NAME[,NAME...]|all]
//                       [--authority AUTH] [--timeout SECONDS] [--verbose]
//
// Prints TAP-style lines ("1..N", then "ok - grpc <case>" or
// "not ok - grpc <case>: <reason>") and exits 0 if every case passed, 1 if any
// failed, 2 on a usage error. Every case has its own timeout (default 20 s).
'use strict';

const crypto = require('crypto');
const { grpc, loadTestService, channelOptions } = require('./grpc_common');

const CASES = [
  'unary', 'metadata', 'server-streaming', 'client-streaming', 'bidi',
  'error', 'deadline', 'large', 'concurrent', 'large-stream',
];

function usage(code) {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: node grpc_client.js --target HOST:PORT [--case NAME[,NAME...]|all]\n' +
    '                           [--authority AUTH] [--timeout SECONDS] [--verbose]\n' +
    `cases: ${CASES.join(', ')}\n`);
  process.exit(code);
}

const opts = { target: null, cases: 'all', authority: null, timeout: 20, verbose: false };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) { process.stderr.write(`grpc_client.js: ${a} needs a value\n`); usage(2); }
      return argv[++i];
    };
    switch (a) {
      case '--target': opts.target = val(); break;
      case '--case': case '--cases': opts.cases = val(); break;
      case '--authority': opts.authority = val(); break;
      case '--timeout': opts.timeout = Number(val()); break;
      case '--verbose': case '-v': opts.verbose = true; break;
      case '--help': case '-h': usage(0); break;
      default: process.stderr.write(`grpc_client.js: unknown argument ${a}\n`); usage(2);
    }
  }
  if (!opts.target) { process.stderr.write('grpc_client.js: --target HOST:PORT is required\n'); usage(2); }
  if (!(opts.timeout > 0)) { process.stderr.write('grpc_client.js: --timeout must be > 0\n'); usage(2); }
}

const selected = opts.cases === 'all' ? CASES : opts.cases.split(',').map((s) => s.trim()).filter(Boolean);
for (const c of selected) {
  if (!CASES.includes(c)) { process.stderr.write(`grpc_client.js: unknown case '${c}'\n`); usage(2); }
}

const log = (...a) => { if (opts.verbose) process.stderr.write(`# ${a.join(' ')}\n`); };
const sha256 = (b) => crypto.createHash('sha256').update(b || Buffer.alloc(0)).digest('hex');
const TestService = loadTestService();
const clientOptions = Object.assign({}, channelOptions);
if (opts.authority) clientOptions['grpc.default_authority'] = opts.authority;

class CaseError extends Error {}
function check(cond, msg) { if (!cond) throw new CaseError(msg); }

function describe(err) {
  if (err && typeof err.code === 'number' && err.details !== undefined) {
    const name = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || '?';
    return `grpc status ${err.code} (${name}): ${err.details}`;
  }
  return (err && err.message) || String(err);
}

const deadline = () => new Date(Date.now() + opts.timeout * 1000);

// Promisified unary call; resolves {resp, initial, trailing}.
function unary(client, method, req, md, options) {
  return new Promise((resolve, reject) => {
    let initial = null;
    let resp;
    let error = null;
    let pending = 2;
    const done = (status) => {
      if (--pending > 0) return;
      if (error) reject(error); else resolve({ resp, initial, trailing: status && status.metadata });
    };
    const call = client[method](req, md || new grpc.Metadata(), Object.assign({ deadline: deadline() }, options || {}),
      (err, r) => { error = err; resp = r; done(null); });
    call.on('metadata', (m) => { initial = m; });
    call.on('status', (s) => done(s));
  });
}

function randomPayload(n) { return crypto.randomBytes(n); }

const tests = {
  async unary(client) {
    const payload = randomPayload(1024);
    const { resp } = await unary(client, 'Unary', { text: 'hello wisp', payload, seq: 7 });
    check(resp.text === 'hello wisp', `text mismatch: ${JSON.stringify(resp.text)}`);
    check(Buffer.compare(resp.payload, payload) === 0, 'payload mismatch');
    check(resp.seq === 7, `seq mismatch: ${resp.seq}`);
  },

  async metadata(client) {
    const val = `v-${crypto.randomBytes(6).toString('hex')}`;
    const bin = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    const md = new grpc.Metadata();
    md.set('x-test-meta', val);
    md.set('x-test-meta-bin', bin);
    const { initial, trailing } = await unary(client, 'Unary', { text: 'meta' }, md);
    check(initial, 'no initial metadata received');
    check(trailing, 'no trailing metadata received');
    for (const [where, m] of [['initial', initial], ['trailing', trailing]]) {
      const got = m.get('x-test-meta');
      check(got.length === 1 && got[0] === val, `${where} x-test-meta = ${JSON.stringify(got)}, want ${val}`);
      const gotBin = m.get('x-test-meta-bin');
      check(gotBin.length === 1 && Buffer.compare(Buffer.from(gotBin[0]), bin) === 0,
        `${where} x-test-meta-bin mismatch`);
    }
    log('server name', initial.get('x-server-name'), 'xfcc', initial.get('x-seen-xfcc'));
  },

  'server-streaming'(client) {
    const N = 100;
    return new Promise((resolve, reject) => {
      const call = client.ServerStream({ count: N, payload_size: 1024, text: 'ss' }, new grpc.Metadata(), { deadline: deadline() });
      let n = 0;
      let bad = null;
      call.on('data', (m) => {
        if (!bad && (m.seq !== n || m.text !== 'ss' || m.payload.length !== 1024)) {
          bad = `message ${n}: seq=${m.seq} text=${m.text} len=${m.payload.length}`;
        }
        n++;
      });
      call.on('error', reject);
      call.on('status', (s) => {
        if (s.code !== grpc.status.OK) return; // 'error' handles it
        if (bad) return reject(new CaseError(bad));
        if (n !== N) return reject(new CaseError(`got ${n} messages, want ${N}`));
        resolve();
      });
    });
  },

  async 'client-streaming'(client) {
    const N = 100;
    const SIZE = 1000;
    const resp = await new Promise((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), { deadline: deadline() }, (err, r) => (err ? reject(err) : resolve(r)));
      let i = 0;
      const pump = () => {
        while (i < N) {
          const ok = call.write({ text: `m${i}`, payload: randomPayload(SIZE), seq: i });
          i++;
          if (!ok) { call.once('drain', pump); return; }
        }
        call.end();
      };
      pump();
    });
    check(resp.count === N, `count ${resp.count}, want ${N}`);
    check(resp.bytes === N * SIZE, `bytes ${resp.bytes}, want ${N * SIZE}`);
    check(resp.text === `m${N - 1}`, `last text ${resp.text}`);
  },

  bidi(client) {
    const N = 50;
    return new Promise((resolve, reject) => {
      const call = client.Bidi(new grpc.Metadata(), { deadline: deadline() });
      let i = 0;
      let sent = null;
      const send = () => {
        sent = { text: `ping ${i}`, payload: randomPayload(100 + i), seq: i };
        call.write(sent);
      };
      call.on('data', (m) => {
        if (m.seq !== i || m.text !== sent.text || Buffer.compare(m.payload, sent.payload) !== 0) {
          call.cancel();
          reject(new CaseError(`round trip ${i}: echo mismatch (seq ${m.seq})`));
          return;
        }
        i++;
        if (i < N) send(); else call.end();
      });
      call.on('error', reject);
      call.on('status', (s) => {
        if (s.code !== grpc.status.OK) return;
        if (i !== N) return reject(new CaseError(`${i} round trips, want ${N}`));
        resolve();
      });
      send();
    });
  },

  async error(client) {
    let err = null;
    try {
      await unary(client, 'Fail', { text: 'x' });
    } catch (e) { err = e; }
    check(err, 'Fail succeeded, want INVALID_ARGUMENT');
    check(err.code === grpc.status.INVALID_ARGUMENT, `${describe(err)}; want code 3 INVALID_ARGUMENT`);
    check(err.details === 'bad thing happened', `message ${JSON.stringify(err.details)}, want "bad thing happened"`);
  },

  async deadline(client) {
    const t0 = Date.now();
    let err = null;
    try {
      await unary(client, 'Sleep', { ms: 2000 }, null, { deadline: new Date(Date.now() + 300) });
    } catch (e) { err = e; }
    const ms = Date.now() - t0;
    check(err, `Sleep(2000) succeeded despite a 300 ms deadline (${ms} ms)`);
    check(err.code === grpc.status.DEADLINE_EXCEEDED, `${describe(err)}; want code 4 DEADLINE_EXCEEDED`);
    check(ms < 1500, `took ${ms} ms, want < 1500 ms`);
    log('deadline returned after', ms, 'ms');
  },

  async large(client) {
    const payload = randomPayload(4 * 1024 * 1024);
    const want = sha256(payload);
    const { resp } = await unary(client, 'Unary', { text: 'large', payload });
    check(resp.sha256 === want, `server saw sha256 ${resp.sha256}, sent ${want}`);
    check(resp.payload.length === payload.length, `echo length ${resp.payload.length}, want ${payload.length}`);
    check(sha256(resp.payload) === want, 'echoed payload sha256 mismatch');
  },

  async concurrent(client) {
    const N = 100;
    const results = await Promise.all(Array.from({ length: N }, (_, i) =>
      unary(client, 'Unary', { text: `c${i}`, seq: i })));
    results.forEach(({ resp }, i) => check(resp.text === `c${i}` && resp.seq === i, `call ${i} got ${resp.text}`));
  },

  async 'large-stream'(client) {
    const N = 32;
    const SIZE = 1024 * 1024;
    await new Promise((resolve, reject) => {
      const call = client.ServerStream({ count: N, payload_size: SIZE, text: 'big' }, new grpc.Metadata(), { deadline: deadline() });
      let n = 0;
      let bytes = 0;
      call.on('data', (m) => { n++; bytes += m.payload.length; });
      call.on('error', reject);
      call.on('status', (s) => {
        if (s.code !== grpc.status.OK) return;
        if (n !== N || bytes !== N * SIZE) return reject(new CaseError(`server stream: ${n} msgs/${bytes} bytes, want ${N}/${N * SIZE}`));
        resolve();
      });
    });
    const resp = await new Promise((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), { deadline: deadline() }, (err, r) => (err ? reject(err) : resolve(r)));
      const payload = randomPayload(SIZE);
      let i = 0;
      const pump = () => {
        while (i < N) {
          i++;
          if (!call.write({ text: `b${i}`, payload })) { call.once('drain', pump); return; }
        }
        call.end();
      };
      pump();
    });
    check(resp.count === N && resp.bytes === N * SIZE, `client stream: server counted ${resp.count}/${resp.bytes}, want ${N}/${N * SIZE}`);
  },
};

async function runCase(name) {
  const client = new TestService.Test(opts.target, grpc.credentials.createInsecure(), clientOptions);
  let timer = null;
  const t0 = Date.now();
  try {
    await Promise.race([
      tests[name](client),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CaseError(`timed out after ${opts.timeout} s`)), opts.timeout * 1000);
      }),
    ]);
    process.stdout.write(`ok - grpc ${name}\n`);
    return true;
  } catch (e) {
    process.stdout.write(`not ok - grpc ${name}: ${describe(e).replace(/\s*\n\s*/g, ' ')}\n`);
    return false;
  } finally {
    clearTimeout(timer);
    log(name, 'took', Date.now() - t0, 'ms');
    try { client.close(); } catch (e) { /* ignore */ }
  }
}

(async () => {
  process.stdout.write(`1..${selected.length}\n`);
  let failed = 0;
  for (const name of selected) {
    if (!(await runCase(name))) failed++;
  }
  process.stdout.write(`# ${selected.length - failed}/${selected.length} passed\n`);
  // Exit explicitly: a timed-out case may have left a call or timer behind.
  process.exit(failed ? 1 : 0);
})();
