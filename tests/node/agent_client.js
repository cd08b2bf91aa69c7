// A real @grpc/grpc-js client of wisp-agent, loading the .proto files from
// proto/: proof that the agent speaks real gRPC. One JSON line per result.
//   node agent_client.js --target unix:///path/agent.sock [--tls CERT KEY CA] CMD [args]
//   --tls: mTLS with this client SVID (PEM chain, key) verifying the agent by
//   the bundle CA (its URI-only certificate has no host name to check).
//   token SPIFFE_ID [TTL_S] [reusable]  -> {"token","expires_unix"}
//   sign CSR_DER_FILE [TOKEN]           -> {"spiffe_id","chain":n,"bundle":n,"leaf_pem":...}
//   sign-sa CSR_DER_FILE SA_TOKEN       -> the same, with a service-account token
//   watch SPIFFE_ID [N] [nack] [brief] [until=VERSION] [timeout=S]
//                                       -> one line per snapshot; ACKs (or NACKs) each; stops
//                                          after N or at VERSION (gives up after S, 15 s);
//                                          brief: policy_bytes instead of policy_yaml
//   apply FILE                          -> {"version"}
//   status                              -> the StatusResponse
//   rotate prepare|activate|finish [force] -> the RotateCAResponse
//   raw PATH HEX|zeros:N                -> sends raw bytes as a message (bad input tests)
// Errors: {"error":{"code":N,"name":"...","details":"..."}} and exit 1.
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const args = process.argv.slice(2);
let target = 'unix:///run/wisp/agent.sock';
if (args[0] === '--target') { target = args[1]; args.splice(0, 2); }
let tls = null;
if (args[0] === '--tls') { tls = args.slice(1, 4).map((f) => fs.readFileSync(f)); args.splice(0, 4); }
const [cmd, ...rest] = args;
const def = protoLoader.loadSync(['wisp/v1/identity.proto', 'wisp/v1/config.proto', 'wisp/v1/admin.proto'], {
  includeDirs: [path.join(__dirname, '..', '..', 'proto')], keepCase: true, longs: Number, defaults: true,
});
const v1 = grpc.loadPackageDefinition(def).wisp.v1;
const creds = tls ? grpc.credentials.createSsl(tls[2], tls[1], tls[0], { checkServerIdentity: () => undefined })
  : grpc.credentials.createInsecure();
const opts = { 'grpc.max_receive_message_length': 16 << 20 };
const deadline = () => Date.now() + 15000;

function fail(err) {
  console.log(JSON.stringify({ error: { code: err.code, name: grpc.status[err.code], details: err.details } }));
  process.exit(1);
}
function pem(der) {
  const b64 = Buffer.from(der).toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const admin = () => new v1.Admin(target, creds, opts);
switch (cmd) {
  case 'token':
    admin().CreateJoinToken({ spiffe_id: rest[0], ttl_seconds: Number(rest[1] || 0), reusable: rest[2] === 'reusable' },
      { deadline: deadline() }, (err, r) => { if (err) fail(err); console.log(JSON.stringify(r)); process.exit(0); });
    break;
  case 'apply':
    admin().ApplyPolicy({ yaml: fs.readFileSync(rest[0], 'utf8'), source: rest[0] }, { deadline: deadline() },
      (err, r) => { if (err) fail(err); console.log(JSON.stringify(r)); process.exit(0); });
    break;
  case 'status':
    admin().Status({}, { deadline: deadline() }, (err, r) => { if (err) fail(err); console.log(JSON.stringify(r)); process.exit(0); });
    break;
  case 'rotate': {
    const phase = { prepare: 'CA_ROTATION_PREPARE', activate: 'CA_ROTATION_ACTIVATE', finish: 'CA_ROTATION_FINISH' }[rest[0]];
    admin().RotateCA({ phase: phase || 'CA_ROTATION_PHASE_UNSPECIFIED', force: rest[1] === 'force' }, { deadline: deadline() },
      (err, r) => { if (err) fail(err); console.log(JSON.stringify(r)); process.exit(0); });
    break;
  }
  case 'sign':
  case 'sign-sa': {
    const id = new v1.Identity(target, creds, opts);
    const req = { csr: fs.readFileSync(rest[0]) };
    // sa_token is bytes: a Buffer (a string would be read as base64). A
    // "\0" in the argument stands for a NUL byte (the shell cannot pass one).
    if (cmd === 'sign') req.join_token = rest[1] || '';
    else req.sa_token = Buffer.from((rest[1] || '').replace(/\\0/g, '\0'), 'latin1');
    id.Sign(req, { deadline: deadline() }, (err, r) => {
      if (err) fail(err);
      console.log(JSON.stringify({ spiffe_id: r.spiffe_id, chain: r.chain.length, bundle: r.bundle.length,
        not_after_unix: r.not_after_unix, leaf_pem: pem(r.chain[0]), bundle_pem: r.bundle.map(pem).join('') }));
      process.exit(0);
    });
    break;
  }
  case 'watch': {
    const want = Number(rest[1] || 1);
    const opt = rest.slice(2);
    const nack = opt.includes('nack');
    const brief = opt.includes('brief');
    const until = (opt.find((o) => o.startsWith('until=')) || '').slice(6);
    const timeout = Number((opt.find((o) => o.startsWith('timeout=')) || 'timeout=15').slice(8));
    const cfg = new v1.Config(target, creds, opts);
    const call = cfg.Watch();
    let n = 0;
    call.on('data', (s) => {
      const policy = brief ? { policy_bytes: Buffer.byteLength(s.policy_yaml) } : { policy_yaml: s.policy_yaml };
      console.log(JSON.stringify({ version: s.version, nonce: s.nonce, ...policy, bundle: s.bundle.length }));
      call.write({ spiffe_id: rest[0], version: s.version, nonce: s.nonce, error_detail: nack ? 'rejected by test' : '' });
      if (++n >= want || s.version === until) setTimeout(() => { call.cancel(); process.exit(0); }, 300);
    });
    call.on('error', (err) => { if (err.code !== grpc.status.CANCELLED) fail(err); });
    call.write({ spiffe_id: rest[0], node: { proxy_version: 'test' } });
    setTimeout(() => { console.log(JSON.stringify({ timeout: true, got: n })); process.exit(1); }, timeout * 1000).unref();
    break;
  }
  case 'raw': {
    const client = new grpc.Client(target, creds, opts);
    const spec = rest[1] || '';
    const body = spec.startsWith('zeros:') ? Buffer.alloc(Number(spec.slice(6))) : Buffer.from(spec, 'hex');
    client.makeUnaryRequest(rest[0], (x) => x, (x) => x, body, { deadline: deadline() },
      (err) => { if (err) fail(err); console.log(JSON.stringify({ ok: true })); process.exit(0); });
    break;
  }
  default:
    console.error('usage: see the header of agent_client.js');
    process.exit(2);
}
