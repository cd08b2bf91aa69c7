#!/usr/bin/env node
// app.js - h2c (cleartext HTTP/2, prior knowledge) test application for wisp.
//
//   node app.js --port P [--host 127.0.0.1] [--name NAME] [--window BYTES] [--verbose]
//   node app.js --gen-bytes N      write the /bytes pattern (N bytes) to stdout
//
// Prints "listening <port>" on stdout once it accepts connections (--port 0
// picks a free port and prints it), then one JSON line per request received:
// {"app":NAME,"stream":ID,"method":M,"path":P}. See README.md for the endpoints.
'use strict';

const http2 = require('http2');
const crypto = require('crypto');

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_AUTHORITY,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_CONTENT_LENGTH,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_NO_ERROR,
} = http2.constants;

function usage(code) {
  const out = code === 0 ? process.stdout : process.stderr;
  out.write(
    'usage: node app.js --port P [--host 127.0.0.1] [--name NAME] [--window BYTES] [--verbose]\n' +
    '       node app.js --gen-bytes N\n');
  process.exit(code);
}

function parseArgs(argv) {
  const o = { port: null, host: '127.0.0.1', name: 'app', window: 0, verbose: false, genBytes: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) { process.stderr.write(`app.js: ${a} needs a value\n`); usage(2); }
      return argv[++i];
    };
    switch (a) {
      case '--port': o.port = Number(val()); break;
      case '--host': o.host = val(); break;
      case '--name': o.name = val(); break;
      case '--window': o.window = Number(val()); break;
      case '--gen-bytes': o.genBytes = Number(val()); break;
      case '--verbose': case '-v': o.verbose = true; break;
      case '--help': case '-h': usage(0); break;
      default: process.stderr.write(`app.js: unknown argument ${a}\n`); usage(2);
    }
  }
  return o;
}

// ---- deterministic byte pattern: byte at offset i is (i % 251) ----------
// 251 is prime, so a dropped, duplicated or reordered chunk of any power-of-two
// size changes the hash. CHUNK is a multiple of 251, so every chunk starts at
// pattern offset 0 and one immutable buffer can be written again and again.
const PATTERN_PERIOD = 251;
const CHUNK = PATTERN_PERIOD * 261; // 65511 bytes
const PATTERN = Buffer.alloc(CHUNK);
for (let i = 0; i < CHUNK; i++) PATTERN[i] = i % PATTERN_PERIOD;

// Write n pattern bytes to a writable, honouring backpressure. cb(err) at end.
function writePattern(w, n, onChunk, cb) {
  let left = n;
  let done = false;
  const finish = (err) => { if (!done) { done = true; w.removeListener('close', onClose); cb(err); } };
  const onClose = () => finish(new Error('closed'));
  w.on('close', onClose);
  const pump = () => {
    while (left > 0) {
      if (w.destroyed || w.writableEnded) return finish(new Error('closed'));
      const chunk = left >= CHUNK ? PATTERN : PATTERN.subarray(0, left);
      left -= chunk.length;
      if (onChunk) onChunk(chunk);
      if (!w.write(chunk)) { w.once('drain', pump); return; }
    }
    finish(null);
  };
  pump();
}

const opts = parseArgs(process.argv.slice(2));

if (opts.genBytes !== null) {
  if (!Number.isSafeInteger(opts.genBytes) || opts.genBytes < 0) {
    process.stderr.write('app.js: --gen-bytes needs a non-negative integer\n');
    process.exit(2);
  }
  writePattern(process.stdout, opts.genBytes, null, (err) => { if (err) process.exit(1); });
  return;
}

if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
  process.stderr.write('app.js: --port P is required (0-65535)\n');
  usage(2);
}

const log = (...a) => { if (opts.verbose) process.stderr.write(`[app ${opts.name}] ${a.join(' ')}\n`); };

const settings = {};
if (opts.window > 0) settings.initialWindowSize = opts.window;

const server = http2.createServer({
  settings,
  // Node's default (10 MB) can trip ENHANCE_YOUR_CALM under many large streams.
  maxSessionMemory: 256,
});

server.on('error', (err) => {
  process.stderr.write(`app.js: server error: ${err.message}\n`);
  process.exit(1);
});

server.on('sessionError', (err) => log('sessionError', err.code || err.message));

server.on('session', (session) => {
  session.maxStreamId = 0;
  session.on('error', (err) => log('session error', err.code || err.message));
  if (opts.window > 0) {
    try { session.setLocalWindowSize(opts.window); } catch (e) { log('setLocalWindowSize', e.message); }
  }
});

function baseHeaders(status, type, extra) {
  const h = { [HTTP2_HEADER_STATUS]: status, 'x-app-name': opts.name };
  if (type) h[HTTP2_HEADER_CONTENT_TYPE] = type;
  return Object.assign(h, extra || {});
}

function safeRespond(stream, headers, options) {
  if (stream.destroyed || stream.closed || stream.headersSent) return false;
  try {
    stream.respond(headers, options);
    return true;
  } catch (e) {
    log('respond failed', e.message);
    return false;
  }
}

function sendText(stream, status, text, extra) {
  if (safeRespond(stream, baseHeaders(status, 'text/plain; charset=utf-8', extra))) stream.end(text);
}

function sendJSON(stream, status, obj) {
  if (safeRespond(stream, baseHeaders(status, 'application/json'))) stream.end(JSON.stringify(obj) + '\n');
}

// Drain the request body, then call cb(byteCount).
function drainBody(stream, cb) {
  let n = 0;
  stream.on('data', (c) => { n += c.length; });
  stream.on('end', () => cb(n));
  stream.resume();
}

function pairs(raw) {
  const out = [];
  for (let i = 0; i + 1 < (raw || []).length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

server.on('stream', (stream, headers, flags, rawHeaders) => {
  const session = stream.session;
  if (session && stream.id > session.maxStreamId) session.maxStreamId = stream.id;
  stream.on('error', (err) => log('stream error', stream.id, err.code || err.message));

  const method = headers[HTTP2_HEADER_METHOD];
  const fullPath = headers[HTTP2_HEADER_PATH] || '/';
  const authority = headers[HTTP2_HEADER_AUTHORITY] || headers.host || '';
  let url;
  try { url = new URL(fullPath, 'http://x'); } catch (e) { url = new URL('http://x/'); }
  const path = url.pathname;
  const q = url.searchParams;
  // Every request that reaches the app is logged, so tests can assert
  // that one did not (policy denials, wrong identities).
  process.stdout.write(JSON.stringify({ app: opts.name, stream: stream.id, method, path: fullPath }) + '\n');

  const info = () => ({
    name: opts.name,
    method,
    path: fullPath,
    authority,
    headers,
    rawHeaders: pairs(rawHeaders),
  });

  if (method === 'POST' && path === '/echo') {
    const h = baseHeaders(200, headers[HTTP2_HEADER_CONTENT_TYPE] || 'application/octet-stream');
    if (!safeRespond(stream, h)) return;
    stream.pipe(stream); // readable side = request body, writable side = response body
    return;
  }

  if (method === 'POST' && path === '/sha256') {
    const hash = crypto.createHash('sha256');
    let n = 0;
    stream.on('data', (c) => { hash.update(c); n += c.length; });
    stream.on('end', () => sendText(stream, 200, `${hash.digest('hex')} ${n}\n`));
    return;
  }

  if (method === 'POST' && path === '/trailers-echo') {
    let trailers = {};
    stream.on('trailers', (t) => { trailers = t; });
    drainBody(stream, (n) => {
      const echo = {};
      for (const [k, v] of Object.entries(trailers)) {
        if (!k.startsWith(':')) echo[`x-echo-${k}`] = v;
      }
      const body = JSON.stringify({ bodyBytes: n, trailers }) + '\n';
      const has = Object.keys(echo).length > 0;
      if (!safeRespond(stream, baseHeaders(200, 'application/json'), { waitForTrailers: has })) return;
      if (has) stream.on('wantTrailers', () => stream.sendTrailers(echo));
      stream.end(body);
    });
    return;
  }

  // Trace headers (W3C, B3) as received, both in the body and sent back as
  // response headers of the same names: a sidecar must pass them both ways.
  if (path === '/trace-echo') {
    const trace = {};
    for (const [k, v] of Object.entries(headers)) {
      if (k === 'traceparent' || k === 'tracestate' || k === 'b3' || k.startsWith('x-b3-')) trace[k] = v;
    }
    stream.resume();
    if (safeRespond(stream, baseHeaders(200, 'application/json', trace))) stream.end(JSON.stringify(trace) + '\n');
    return;
  }

  if ((method === 'GET' || method === 'HEAD') && path === '/bytes') {
    const raw = q.get('n');
    const n = Number(raw);
    if (raw === null || raw === '' || !Number.isSafeInteger(n) || n < 0) {
      return sendText(stream, 400, 'need ?n=<non-negative integer>\n');
    }
    const wantTrailer = q.get('trailer') === '1';
    const h = baseHeaders(200, 'application/octet-stream', { [HTTP2_HEADER_CONTENT_LENGTH]: String(n) });
    if (method === 'HEAD') { safeRespond(stream, h, { endStream: true }); return; }
    if (!safeRespond(stream, h, { waitForTrailers: wantTrailer })) return;
    const hash = wantTrailer ? crypto.createHash('sha256') : null;
    if (wantTrailer) {
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-bytes-sha256': hash.digest('hex') }));
    }
    writePattern(stream, n, hash ? (c) => hash.update(c) : null, (err) => {
      if (err) { log(stream.id, 'bytes aborted'); return; }
      stream.end();
    });
    stream.resume(); // discard any request body
    return;
  }

  if (method === 'GET' && path === '/trailers') {
    if (!safeRespond(stream, baseHeaders(200, 'text/plain; charset=utf-8'), { waitForTrailers: true })) return;
    // ?grpc-status=V: the trailers also carry grpc-status V, as given (junk too).
    const gs = q.get('grpc-status');
    const t = gs === null ? { 'x-trailer-test': 'yes' } : { 'x-trailer-test': 'yes', 'grpc-status': gs };
    stream.on('wantTrailers', () => stream.sendTrailers(t));
    stream.end('ok');
    return;
  }

  const statusMatch = /^\/status\/(\d{3})$/.exec(path);
  if (statusMatch) {
    const code = Number(statusMatch[1]);
    stream.resume();
    if (code < 200 || code > 599) return sendText(stream, 400, 'status must be 200-599\n');
    if (code === 204 || code === 304) {
      safeRespond(stream, baseHeaders(code), { endStream: true });
      return;
    }
    return sendText(stream, code, `status ${code}\n`);
  }

  if (path === '/slow') {
    const ms = Number(q.get('ms') || 0);
    if (!Number.isFinite(ms) || ms < 0) return sendText(stream, 400, 'need ?ms=<non-negative number>\n');
    stream.resume();
    const t = setTimeout(() => sendText(stream, 200, `slow ${ms}\n`), ms);
    stream.on('close', () => clearTimeout(t));
    return;
  }

  if (path === '/reset') {
    stream.resume();
    stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }

  if (path === '/goaway') {
    stream.resume();
    if (!safeRespond(stream, baseHeaders(200, 'text/plain; charset=utf-8'))) return;
    stream.end('goaway\n', () => {
      if (!session || session.destroyed || session.closed) return;
      try {
        // last-stream-id = highest stream we have seen, so in-flight streams
        // complete; then close once they have (no new streams are accepted).
        session.goaway(NGHTTP2_NO_ERROR, session.maxStreamId);
        session.close();
      } catch (e) { log('goaway failed', e.message); }
    });
    return;
  }

  // GET / and anything else: describe the request (body, if any, is counted).
  if (method === 'HEAD') {
    safeRespond(stream, baseHeaders(200, 'application/json'), { endStream: true });
    return;
  }
  drainBody(stream, (n) => sendJSON(stream, 200, Object.assign(info(), { bodyBytes: n })));
});

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
