#!/usr/bin/python3
"""The raw HTTP/2 peers of noindex_test: fields a caller or an app sent as
HPACK "literal never indexed" (RFC 7541 6.2.3) must reach the other end
never indexed, through both proxies (RFC 7541 7.1.3); h2 reports each
received field's representation (NeverIndexedHeaderTuple or HeaderTuple).

  noindex_peer.py app PORT SECONDS
    an h2c app: for each request, checks that x-api-key (headers) and
    x-req-sig (trailers) arrived never indexed and x-plain (headers) did
    not, and answers 200 with x-verdict (ok, or what was wrong), a
    never-indexed x-session-token and an ordinary x-plain-resp, a body,
    then trailers: a never-indexed x-trailer-secret and an ordinary
    x-trailer-plain. Logs "req CALLER VERDICT" on stdout.
  noindex_peer.py client PORT CALLER REQUESTS
    one h2c connection to PORT, REQUESTS POSTs one after another, each
    with x-api-key never indexed, x-plain ordinary, a body and a
    never-indexed trailer x-req-sig; checks the answers in turn and prints
    "PASS CALLER-N" or "FAIL CALLER-N: why" per request.
Loopback only."""
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.utilities import NeverIndexedHeaderTuple

NEVER = NeverIndexedHeaderTuple


def kind(fields, name):
    """'never', 'plain' or 'missing': how field |name| arrived."""
    for f in fields:
        if f[0] == name:
            return "never" if isinstance(f, NeverIndexedHeaderTuple) else "plain"
    return "missing"


def value(fields, name):
    for f in fields:
        if f[0] == name:
            return f[1]
    return None


def pump(sock, conn):
    data = conn.data_to_send()
    if data:
        sock.sendall(data)


# ---- the app ----
def serve(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    pump(sock, conn)
    streams = {}
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                streams[ev.stream_id] = {"headers": ev.headers, "trailers": []}
            elif isinstance(ev, h2.events.TrailersReceived):
                streams[ev.stream_id]["trailers"] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                answer(conn, ev.stream_id, streams.pop(ev.stream_id))
        pump(sock, conn)


def serve_one(sock):
    try:
        serve(sock)
    except (OSError, h2.exceptions.ProtocolError) as e:
        print("connection error %r" % e, flush=True)
    finally:
        sock.close()


def answer(conn, sid, req):
    h, t = req["headers"], req["trailers"]
    wrong = []
    for name, want, fields in ((b"x-api-key", "never", h), (b"x-plain", "plain", h), (b"x-req-sig", "never", t)):
        got = kind(fields, name)
        if got != want:
            wrong.append("%s=%s" % (name.decode(), got))
    verdict = "ok" if not wrong else "bad " + ",".join(wrong)
    caller = (value(h, b"x-caller") or b"?").decode()
    print("req %s %s" % (caller, verdict), flush=True)
    conn.send_headers(sid, [(":status", "200"), ("x-verdict", verdict),
                            NEVER("x-session-token", "tok-" + caller), ("x-plain-resp", "p")])
    conn.send_data(sid, b"hello " + caller.encode())
    conn.send_headers(sid, [NEVER("x-trailer-secret", "ts-" + caller), ("x-trailer-plain", "tp")], end_stream=True)


def app(port, secs):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    ls.settimeout(0.5)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            s, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_one, args=(s,), daemon=True).start()


# ---- the caller ----
def one(sock, conn, caller, n):
    sid = conn.get_next_available_stream_id()
    tag = "%s-%d" % (caller, n)
    conn.send_headers(sid, [(":method", "POST"), (":path", "/secret/" + tag), (":scheme", "http"),
                            (":authority", "orders"), ("x-caller", caller),
                            NEVER("x-api-key", "key-%s-0123456789abcdef" % caller), ("x-plain", "visible")])
    conn.send_data(sid, b"body of " + tag.encode())
    conn.send_headers(sid, [NEVER("x-req-sig", "sig-" + tag)], end_stream=True)
    pump(sock, conn)
    resp, trailers, body, reset = None, [], b"", None
    sock.settimeout(20)
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            return "FAIL %s: the connection closed" % tag
        for ev in conn.receive_data(data):
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                resp = ev.headers
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamReset):
                reset, done = ev.error_code, True
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        pump(sock, conn)
    if reset is not None:
        return "FAIL %s: reset %s" % (tag, reset)
    wrong = []
    if value(resp or [], b":status") != b"200":
        wrong.append("status %s" % value(resp or [], b":status"))
    v = (value(resp or [], b"x-verdict") or b"none").decode()
    if v != "ok":
        wrong.append("the app saw: " + v)
    for name, want, fields in ((b"x-session-token", "never", resp or []), (b"x-plain-resp", "plain", resp or []),
                               (b"x-trailer-secret", "never", trailers), (b"x-trailer-plain", "plain", trailers)):
        got = kind(fields, name)
        if got != want:
            wrong.append("%s=%s" % (name.decode(), got))
    if body != b"hello " + caller.encode():
        wrong.append("body %r" % body[:40])
    return "PASS " + tag if not wrong else "FAIL %s: %s" % (tag, "; ".join(wrong))


def client(port, caller, count):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    pump(sock, conn)
    for n in range(1, count + 1):
        try:
            print(one(sock, conn, caller, n), flush=True)
        except (OSError, h2.exceptions.ProtocolError) as e:
            print("FAIL %s-%d: %r" % (caller, n, e), flush=True)
            return
    conn.close_connection()
    pump(sock, conn)
    sock.close()


if __name__ == "__main__":
    if sys.argv[1] == "app":
        app(int(sys.argv[2]), float(sys.argv[3]))
    else:
        client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
