#!/usr/bin/env node
// grpc_server.js - @grpc/grpc-js test server (insecure = h2c) for wisp tests.
//
//   node grpc_server.js --port P [--host 127.0.0.1] [--name NAME] [--verbose]
//
// Prints "listening <port>" on stdout once bound (--port 0 picks a free port).
'use strict';

const crypto = require('crypto');
const { grpc, loadTestService, channelOptions } = require('./grpc_common');

function usage(code) {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: node grpc_server.js --port P [--host 127.0.0.1] [--name NAME] [--verbose]\n');
  process.exit(code);
}

const opts = { port: null, host: '127.0.0.1', name: 'grpc-server', verbose: false };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) { process.stderr.write(`grpc_server.js: ${a} needs a value\n`); usage(2); }
      return argv[++i];
    };
    switch (a) {
      case '--port': opts.port = Number(val()); break;
      case '--host': opts.host = val(); break;
      case '--name': opts.name = val(); break;
      case '--verbose': case '-v': opts.verbose = true; break;
      case '--help': case '-h': usage(0); break;
      default: process.stderr.write(`grpc_server.js: unknown argument ${a}\n`); usage(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('grpc_server.js: --port P is required (0-65535)\n');
    usage(2);
  }
}

const log = (...a) => { if (opts.verbose) process.stderr.write(`[grpc ${opts.name}] ${a.join(' ')}\n`); };
const sha256 = (b) => crypto.createHash('sha256').update(b || Buffer.alloc(0)).digest('hex');

// Metadata echoed back: every key starting with x-test-meta (incl. x-test-meta-bin).
function echoMetadata(md) {
  const out = new grpc.Metadata();
  for (const k of Object.keys(md.getMap())) {
    if (k.startsWith('x-test-meta')) {
      for (const val of md.get(k)) out.add(k, val);
    }
  }
  return out;
}

function initialMetadata(call) {
  const md = echoMetadata(call.metadata);
  md.set('x-server-name', opts.name);
  const xfcc = call.metadata.get('x-forwarded-client-cert');
  if (xfcc.length > 0) md.set('x-seen-xfcc', String(xfcc.join(',')));
  return md;
}

const TestService = loadTestService();

const handlers = {
  Unary(call, callback) {
    log('Unary', call.request.text, (call.request.payload || []).length);
    call.sendMetadata(initialMetadata(call));
    const req = call.request;
    callback(null, { text: req.text, payload: req.payload, seq: req.seq, sha256: sha256(req.payload) },
      echoMetadata(call.metadata));
  },

  ServerStream(call) {
    const req = call.request;
    const count = req.count > 0 ? req.count : 0;
    const payload = req.payload_size > 0 ? crypto.randomBytes(req.payload_size) : Buffer.alloc(0);
    log('ServerStream', count, req.payload_size);
    call.sendMetadata(initialMetadata(call));
    let i = 0;
    let timer = null;
    let cancelled = false;
    call.on('cancelled', () => { cancelled = true; if (timer) clearTimeout(timer); log('ServerStream cancelled at', i); });
    call.on('error', (e) => log('ServerStream error', e.message));
    const next = () => {
      timer = null;
      while (!cancelled && i < count) {
        const ok = call.write({ text: req.text, seq: i, payload, sha256: '' });
        i++;
        if (req.interval_ms > 0) { timer = setTimeout(next, req.interval_ms); return; }
        if (!ok) { call.once('drain', next); return; }
      }
      if (!cancelled) call.end(echoMetadata(call.metadata));
    };
    next();
  },

  ClientStream(call, callback) {
    let count = 0;
    let bytes = 0;
    let last = '';
    call.on('data', (m) => { count++; bytes += (m.payload || []).length; last = m.text; });
    call.on('error', (e) => log('ClientStream error', e.message));
    call.on('end', () => {
      log('ClientStream', count, bytes);
      callback(null, { text: last, count, bytes }, echoMetadata(call.metadata));
    });
  },

  Bidi(call) {
    call.sendMetadata(initialMetadata(call));
    call.on('data', (m) => {
      // Echo; pause reading while the write side is backed up.
      if (!call.write({ text: m.text, payload: m.payload, seq: m.seq })) {
        call.pause();
        call.once('drain', () => call.resume());
      }
    });
    call.on('error', (e) => log('Bidi error', e.message));
    call.on('end', () => call.end(echoMetadata(call.metadata)));
  },

  Fail(call, callback) {
    log('Fail');
    callback({ code: grpc.status.INVALID_ARGUMENT, details: 'bad thing happened', metadata: echoMetadata(call.metadata) });
  },

  Sleep(call, callback) {
    const ms = Math.max(0, call.request.ms | 0);
    log('Sleep', ms);
    const t = setTimeout(() => callback(null, { text: call.request.text || `slept ${ms}` }), ms);
    call.on('cancelled', () => { clearTimeout(t); log('Sleep cancelled'); });
  },
};

const server = new grpc.Server(channelOptions);
server.addService(TestService.Test.service, handlers);
server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`grpc_server.js: bind ${opts.host}:${opts.port}: ${err.message}\n`);
    process.exit(1);
  }
  // grpc-js >= 1.10 serves as soon as it is bound (start() is deprecated).
  process.stdout.write(`listening ${port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.forceShutdown();
    process.exit(0);
  });
}
