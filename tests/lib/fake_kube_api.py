#!/usr/bin/python3
"""A stand-in for the Kubernetes API server on loopback, for wisp-agent's
in-cluster calls: HTTPS with a certificate for kubernetes.default.svc,
the bearer token checked against a file, and
  GET /.well-known/openid-configuration  {"issuer": ISSUER, "jwks_uri": ...}
  GET /openid/v1/jwks                    the file --jwks (read at each request)
  GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/NAME
                                         a configuration with two webhooks
  PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/NAME
                                         the body is written to --patch-out
One line per request on stdout: METHOD PATH STATUS."""
import argparse
import http.server
import ssl
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--token", required=True, help="file holding the bearer token to accept")
    p.add_argument("--jwks", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--patch-out", default=None)
    a = p.parse_args()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def reply(self, status, body, ctype="application/json"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            print(self.command, self.path, status, flush=True)

        def authorized(self):
            with open(a.token) as f:
                want = f.read().strip()
            if self.headers.get("Authorization") != "Bearer " + want:
                self.reply(401, '{"kind":"Status","code":401,"message":"Unauthorized"}')
                return False
            return True

        def do_GET(self):
            if not self.authorized():
                return
            if self.path == "/.well-known/openid-configuration":
                self.reply(200, '{"issuer":"%s","jwks_uri":"%s/openid/v1/jwks"}' % (a.issuer, a.issuer))
            elif self.path.startswith("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"):
                name = self.path.rsplit("/", 1)[1]
                self.reply(200, '{"kind":"MutatingWebhookConfiguration","metadata":{"name":"%s"},'
                                '"webhooks":[{"name":"namespace.inject.wisp.dev"},{"name":"pod.inject.wisp.dev"}]}'
                           % name)
            elif self.path == "/openid/v1/jwks":
                with open(a.jwks) as f:
                    self.reply(200, f.read(), "application/jwk-set+json")
            else:
                self.reply(404, '{"kind":"Status","code":404}')

        def do_PATCH(self):
            if not self.authorized():
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if a.patch_out and self.path.startswith(
                    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"):
                with open(a.patch_out, "wb") as f:
                    f.write(self.headers.get("Content-Type", "").encode() + b"\n" + body)
                self.reply(200, '{"kind":"MutatingWebhookConfiguration"}')
            else:
                self.reply(404, '{"kind":"Status","code":404}')

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening", a.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
