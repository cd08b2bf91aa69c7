#!/usr/bin/python3
"""A peer sidecar that finishes its TLS handshake (SVID of orders, ALPN h2)
and then says nothing: no HTTP/2 SETTINGS, no answer (upstream_preface_test).
  mute_peer.py PORT PKI_DIR SECONDS
Loopback only; it exits after SECONDS."""
import socket
import ssl
import sys
import threading
import time

PORT, PKI, SECS = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(f"{PKI}/orders.crt", f"{PKI}/orders.key")
ctx.load_verify_locations(f"{PKI}/ca/ca.crt")
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.set_alpn_protocols(["h2"])


def hold(s):
    s.settimeout(5)
    try:
        t = ctx.wrap_socket(s, server_side=True)
        t.settimeout(SECS)
        while t.recv(65536):  # reads what the proxy sends, answers nothing
            pass
    except (OSError, ssl.SSLError):
        pass
    finally:
        s.close()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", PORT))
ls.listen(16)
ls.settimeout(1)
end = time.monotonic() + SECS
while time.monotonic() < end:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        continue
    threading.Thread(target=hold, args=(c,), daemon=True).start()
