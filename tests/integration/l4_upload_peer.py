#!/usr/bin/python3
"""An L4 upload (ALPN wisp-l4, mTLS) through a wisp inbound listener to a
TCP app that starts reading late; prints "same" when the app got every
byte intact.
  l4_upload_peer.py IN_PORT APP_PORT PKI_DIR NBYTES
While the app sleeps the proxy's buffer toward it fills with a TLS record
read only in part; the tail of the upload then sits inside the proxy's SSL
with nothing left on its socket to wake it. Env CHUNK, PAUSE (s per
read), DELAY (s before the first read) tune the app.
Loopback only."""
import hashlib
import os
import socket
import ssl
import sys
import threading
import time

IN, APP, PKI, N = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
START_DELAY_S = float(os.environ.get("DELAY", "1.0"))  # the proxy's buffer toward the app fills first
CHUNK = int(os.environ.get("CHUNK", "65536"))
PAUSE_S = float(os.environ.get("PAUSE", "0"))
TIMEOUT_S = 10

ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accepted socket
ls.bind(("127.0.0.1", APP))
ls.listen(4)
ls.settimeout(TIMEOUT_S)
result = {}


def app():
    try:
        c, _ = ls.accept()
    except OSError:
        return
    c.settimeout(TIMEOUT_S)
    h, got = hashlib.sha256(), 0
    time.sleep(START_DELAY_S)
    try:
        while got < N:
            d = c.recv(CHUNK)
            if not d:
                break
            h.update(d)
            got += len(d)
            time.sleep(PAUSE_S)
    except OSError:
        pass
    result["got"] = (h.hexdigest(), got)
    c.close()


th = threading.Thread(target=app, daemon=True)
th.start()
data = os.urandom(N)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(PKI + "/ca/ca.crt")
ctx.load_cert_chain(PKI + "/frontend.crt", PKI + "/frontend.key")
ctx.set_alpn_protocols(["wisp-l4"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", IN), timeout=TIMEOUT_S))
try:
    s.sendall(data)
except OSError as e:
    print("send failed: %r" % e)
th.join(TIMEOUT_S + START_DELAY_S + 5)
got = result.get("got", ("", 0))
print("same" if got == (hashlib.sha256(data).hexdigest(), N) else "differs: app got %d of %d bytes" % (got[1], N))
s.close()
