#!/usr/bin/env node
// fake_agent.js - a stand-in wisp-agent for wispctl tests: a real gRPC server
// (@grpc/grpc-js, h2c) on a Unix socket, serving wisp.v1.Admin and
// wisp.v1.Identity from proto/wisp/v1/*.proto with canned answers.
//
//   node fake_agent.js --socket PATH [--trust-domain shop.local]
//   node fake_agent.js --socket PATH --raw MODE
//
// Prints "listening unix:PATH" on stdout once bound, then one JSON line per
// call received: {"method":"CreateJoinToken","request":{...}}. SIGTERM: exit 0.
//
// gRPC mode:
//   Admin.CreateJoinToken  token "wjt." + 32 hex, expires now + ttl (3600 if 0);
//                          PERMISSION_DENIED for an ID outside the trust domain
//                          (message with '%' and non-ASCII, to test decoding);
//                          an ID ending in /sa/slow answers after 5 s.
//   Admin.ApplyPolicy      version "2", "3", ...; INVALID_ARGUMENT naming the
//                          source when the YAML has "kind: Bogus".
//   Admin.Status           the current version, a CA valid for 365 days, one
//                          bundle root, two proxies (one connected and current,
//                          one disconnected with a NACK and an expired SVID).
//   Identity.Sign          UNAUTHENTICATED without a join token; otherwise a
//                          canned chain and bundle (not real certificates).
// Raw mode (plain node:http2, for what a gRPC server would never do):
//   http404  every request gets HTTP 404 text/plain
//   reset    every stream is reset with RST_STREAM CANCEL
//   hang     requests are never answered
//   close    the connection is destroyed on the first request
'use strict';

const fs = require('fs');
const http2 = require('http2');
const path = require('path');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const REPO = path.resolve(__dirname, '..', '..');

function usage(code) {
  (code === 0 ? process.stdout : process.stderr).write(
    'usage: node fake_agent.js --socket PATH [--trust-domain TD] [--raw http404|reset|hang|close]\n');
  process.exit(code);
}

const opts = { socket: null, td: 'shop.local', raw: null };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) { process.stderr.write(`fake_agent.js: ${a} needs a value\n`); usage(2); }
      return argv[++i];
    };
    switch (a) {
      case '--socket': opts.socket = val(); break;
      case '--trust-domain': opts.td = val(); break;
      case '--raw': opts.raw = val(); break;
      case '--help': case '-h': usage(0); break;
      default: process.stderr.write(`fake_agent.js: unknown argument ${a}\n`); usage(2);
    }
  }
  if (!opts.socket) { process.stderr.write('fake_agent.js: --socket PATH is required\n'); usage(2); }
  if (opts.raw && !['http404', 'reset', 'hang', 'close'].includes(opts.raw)) {
    process.stderr.write(`fake_agent.js: unknown --raw mode ${opts.raw}\n`);
    usage(2);
  }
}

const record = (method, request) => process.stdout.write(JSON.stringify({ method, request }) + '\n');
const now = () => Math.floor(Date.now() / 1000);
let stopping = null;

function fail(cb, code, details) {
  const err = new Error(details);
  err.code = code;
  err.details = details;
  cb(err);
}

function removeStale() {
  try { if (fs.lstatSync(opts.socket).isSocket()) fs.unlinkSync(opts.socket); } catch (e) { /* none */ }
}

// ---- raw HTTP/2 mode ----

function startRaw() {
  const held = [];
  const server = http2.createServer();
  server.on('session', (s) => { held.push(s); s.on('error', () => {}); });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    record(`raw:${opts.raw}`, { path: headers[':path'] });
    switch (opts.raw) {
      case 'http404':
        stream.respond({ ':status': 404, 'content-type': 'text/plain' });
        stream.end('no such thing\n');
        break;
      case 'reset':
        stream.close(http2.constants.NGHTTP2_CANCEL);
        break;
      case 'hang':
        break;
      case 'close':
        stream.session.destroy();
        break;
    }
  });
  removeStale();
  server.listen(opts.socket, () => console.log(`listening unix:${opts.socket}`));
  stopping = () => { for (const s of held) s.destroy(); server.close(() => process.exit(0)); };
}

// ---- gRPC mode ----

function startGrpc() {
  const def = protoLoader.loadSync(['wisp/v1/admin.proto', 'wisp/v1/identity.proto', 'wisp/v1/config.proto'], {
    includeDirs: [path.join(REPO, 'proto')],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const v1 = grpc.loadPackageDefinition(def).wisp.v1;
  let version = 1;
  const inTd = (id) => typeof id === 'string' && id.startsWith(`spiffe://${opts.td}/`);

  const admin = {
    CreateJoinToken(call, cb) {
      const r = call.request;
      record('CreateJoinToken', r);
      if (!inTd(r.spiffe_id)) {
        return fail(cb, grpc.status.PERMISSION_DENIED,
          `${r.spiffe_id} is not in trust domain ${opts.td} (100% sure, café)`);
      }
      const answer = () => cb(null, {
        token: `wjt.${crypto.randomBytes(16).toString('hex')}`,
        expires_unix: now() + (r.ttl_seconds || 3600),
      });
      if (r.spiffe_id.endsWith('/sa/slow')) {
        const t = setTimeout(answer, 5000);
        call.on('cancelled', () => clearTimeout(t));
      } else {
        answer();
      }
    },
    ApplyPolicy(call, cb) {
      const r = call.request;
      record('ApplyPolicy', { source: r.source, yaml: r.yaml });
      if (/kind:\s*Bogus/.test(r.yaml)) {
        return fail(cb, grpc.status.INVALID_ARGUMENT, `${r.source}: document 1: unknown kind "Bogus"`);
      }
      version++;
      cb(null, { version: String(version) });
    },
    Status(call, cb) {
      record('Status', call.request);
      const t = now();
      cb(null, {
        version: String(version),
        ca_not_after_unix: t + 365 * 86400,
        bundle_roots: 1,
        proxies: [
          {
            spiffe_id: `spiffe://${opts.td}/ns/shop/sa/orders`,
            connected: true,
            acked_version: String(version),
            last_nack_error: '',
            svid_serial: '1A2B3C4D',
            svid_not_after_unix: t + 23 * 3600,
            last_seen_unix: t - 5,
          },
          {
            spiffe_id: `spiffe://${opts.td}/ns/shop/sa/frontend`,
            connected: false,
            acked_version: '1',
            last_nack_error: 'document 1 (orders-read): spec.rules[0].to[0].ports[0]: not a port',
            svid_serial: '0F',
            svid_not_after_unix: t - 3600,
            last_seen_unix: t - 7200,
          },
        ],
      });
    },
  };

  const identity = {
    Sign(call, cb) {
      const r = call.request;
      record('Sign', { csr_bytes: r.csr.length, join_token: r.join_token });
      if (!r.join_token) return fail(cb, grpc.status.UNAUTHENTICATED, 'no join token and no client certificate');
      cb(null, {
        spiffe_id: `spiffe://${opts.td}/ns/shop/sa/orders`,
        chain: [Buffer.from('not a real leaf')],
        bundle: [Buffer.from('not a real root')],
        not_after_unix: now() + 86400,
      });
    },
  };

  const server = new grpc.Server();
  server.addService(v1.Admin.service, admin);
  server.addService(v1.Identity.service, identity);
  removeStale();
  server.bindAsync(`unix://${opts.socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      process.stderr.write(`fake_agent.js: cannot listen on ${opts.socket}: ${err.message}\n`);
      process.exit(1);
    }
    // grpc-js >= 1.10 serves as soon as it is bound (start() is deprecated).
    console.log(`listening unix:${opts.socket}`);
  });
  stopping = () => { server.forceShutdown(); process.exit(0); };
}

process.on('SIGTERM', () => stopping && stopping());
process.on('SIGINT', () => stopping && stopping());
if (opts.raw) startRaw(); else startGrpc();
