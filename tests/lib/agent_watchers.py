#!/usr/bin/python3
"""Config.Watch streams on wisp-agent that never read: a hostile (or stuck)
proxy, in raw HTTP/2 frames with python3-h2 (grpc-js always reads).

  agent_watchers.py (--socket PATH | --tcp HOST:PORT) [--tls CERT KEY CA] --spiffe-id ID
                    [--conns C] [--streams S] [--window BYTES] [--hold SECONDS]
                    [--path PATH --partial BYTES --settle SECONDS]

Opens C connections to the agent's Unix socket (plaintext h2c, or mTLS with
the SVID CERT/KEY verifying the agent by CA: the socket takes both) or to its
--listen-tls address (mTLS), each with S Watch
streams that send their first WatchRequest and then nothing. It announces a
stream window of BYTES (SETTINGS_INITIAL_WINDOW_SIZE) and never sends a
WINDOW_UPDATE, so the agent can deliver at most that much per stream and
64 KiB per connection; everything else it must queue or drop. Frames that do
arrive are read (so the trailers of refused streams are seen) but never
acknowledged.

--partial BYTES: each stream instead announces a 1 MiB request message on
PATH and sends only BYTES of it (as flow control allows), never finishing:
a caller making the agent hold request bytes.

Prints one JSON line once every stream was answered (response headers, or
trailers for a refused one), or after --settle seconds (10):
  {"ready":true,"accepted":N,"refused":{"STATUS: message":count,...},...}
then holds the streams for SECONDS (or until SIGTERM) and prints the final
tally the same way, with "ready":false. Exits 0; 1 if it could not connect.

SIGUSR1: the stuck proxy recovers. It opens every window and reads all that
the agent kept for it, then prints a line with "drained":true and, for each
stream, the Snapshot versions it received in order, e.g.
"versions":{"2,6":2}: every message must parse (a message the agent had
started to send must arrive whole) and only the newest should follow it.
"""
import argparse
import json
import select
import signal
import socket
import ssl
import sys
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.settings

WATCH_PATH = "/wisp.v1.Config/Watch"
ANNOUNCED_LEN = 1024 * 1024
DRAIN_WINDOW = 64 * 1024 * 1024
DRAIN_QUIET_S = 1.0
DRAIN_LIMIT_S = 60.0
STATUS_NAMES = {0: "OK", 1: "CANCELLED", 3: "INVALID_ARGUMENT", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
                13: "INTERNAL", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED"}


def watch_request(spiffe_id):
    """A WatchRequest with field 1 (spiffe_id) only, gRPC length-prefixed."""
    sid = spiffe_id.encode()
    body = b"\x0a" + varint(len(sid)) + sid
    return b"\x00" + len(body).to_bytes(4, "big") + body


def read_varint(b, i):
    n = shift = 0
    while True:
        n |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not b[i - 1] & 0x80:
            return n, i


def snapshot_versions(data):
    """The version (field 1) of each gRPC-framed Snapshot in |data|, and
    "cut" if the bytes end inside a message or a message does not parse."""
    out, i = [], 0
    while i < len(data):
        if len(data) - i < 5 or len(data) - i - 5 < int.from_bytes(data[i + 1:i + 5], "big"):
            return out + ["cut"]
        end = i + 5 + int.from_bytes(data[i + 1:i + 5], "big")
        j, version = i + 5, None
        try:
            while j < end:
                key, j = read_varint(data, j)
                if key & 7 == 2:
                    n, j = read_varint(data, j)
                    if key >> 3 == 1:
                        version = data[j:j + n].decode()
                    j += n
                elif key & 7 == 0:
                    _, j = read_varint(data, j)
                else:
                    raise ValueError("wire type %d" % (key & 7))
        except (IndexError, ValueError, UnicodeDecodeError):
            j = -1
        out.append(version if j == end and version is not None else "garbled")
        i = end
    return out


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


class Conn:
    def __init__(self, args):
        if args.tcp:
            host, port = args.tcp.rsplit(":", 1)
            raw = socket.create_connection((host, int(port)), timeout=5)
        else:
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            raw.settimeout(5)
            raw.connect(args.socket)
        if args.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False  # the agent's SVID names no host, only its SPIFFE ID
            ctx.load_verify_locations(args.tls[2])
            ctx.load_cert_chain(args.tls[0], args.tls[1])
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw)
        self.sock = raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: args.window})
        self.h2.initiate_connection()
        # id -> {"state": "open"|"accepted"|"ended", "status": str, "bytes": n, "pending": bytes to send}
        self.streams = {}
        self.closed = False
        self.last_data = 0.0
        if args.partial:
            msg = b"\x00" + ANNOUNCED_LEN.to_bytes(4, "big") + b"\x00" * args.partial
        else:
            msg = watch_request(args.spiffe_id)
        for _ in range(args.streams):
            sid = self.h2.get_next_available_stream_id()
            self.h2.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "agent"),
                                       (":path", args.path), ("content-type", "application/grpc"),
                                       ("te", "trailers")])
            self.streams[sid] = {"state": "open", "status": "", "bytes": 0, "pending": msg, "data": b""}
        self.send_pending()

    def send_pending(self):
        """Request bytes, as far as the agent's flow-control windows allow."""
        progress = True
        while progress:
            progress = False
            for sid, st in self.streams.items():
                if not st["pending"] or st["state"] == "ended":
                    continue
                n = min(len(st["pending"]), self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
                if n > 0:
                    self.h2.send_data(sid, st["pending"][:n])
                    st["pending"] = st["pending"][n:]
                    progress = True
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError, socket.timeout):
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        for ev in self.h2.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and st:
                hdrs = dict(ev.headers)
                if "grpc-status" in hdrs:
                    self.end(st, hdrs)
                else:
                    st["state"] = "accepted"
            elif isinstance(ev, h2.events.TrailersReceived) and st:
                self.end(st, dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived) and st:
                st["bytes"] += len(ev.data)  # not acknowledged: no WINDOW_UPDATE until drain()
                st["data"] += ev.data
                self.last_data = time.monotonic()
            elif isinstance(ev, h2.events.StreamReset) and st:
                st["state"], st["status"] = "ended", "RST_STREAM %d" % ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        if not self.closed:
            self.send_pending()

    def drain(self):
        """Opens the connection's and every stream's window wide."""
        if self.closed:
            return
        self.h2.increment_flow_control_window(DRAIN_WINDOW)
        for sid, st in self.streams.items():
            if st["state"] != "ended":
                self.h2.increment_flow_control_window(DRAIN_WINDOW, stream_id=sid)
        self.flush()

    @staticmethod
    def end(st, hdrs):
        code = int(hdrs.get("grpc-status", "2"))
        st["state"] = "ended"
        st["status"] = "%s: %s" % (STATUS_NAMES.get(code, str(code)),
                                   urllib.parse.unquote(hdrs.get("grpc-message", "")))


def tally(conns, ready):
    out = {"ready": ready, "accepted": 0, "open": 0, "refused": {}, "bytes": 0, "conns_closed": 0, "versions": {}}
    for c in conns:
        out["conns_closed"] += c.closed
        for st in c.streams.values():
            out["bytes"] += st["bytes"]
            if st["data"]:
                seq = ",".join(snapshot_versions(st["data"]))
                out["versions"][seq] = out["versions"].get(seq, 0) + 1
            if st["state"] == "ended":
                out["refused"][st["status"]] = out["refused"].get(st["status"], 0) + 1
            else:
                out["accepted" if st["state"] == "accepted" else "open"] += 1
    return out


def pump(conns, until, stop_when_settled):
    while time.monotonic() < until:
        live = [c for c in conns if not c.closed]
        if stop_when_settled and all(st["state"] != "open" for c in live for st in c.streams.values()):
            return
        if not live:
            return
        pending = [c for c in live if isinstance(c.sock, ssl.SSLSocket) and c.sock.pending()]
        ready = pending or select.select([c.sock for c in live], [], [], 0.2)[0]
        for c in live:
            if c in ready or c.sock in ready:
                c.on_readable()


def drain(conns):
    start = time.monotonic()
    for c in conns:
        c.drain()
        c.last_data = start
    while time.monotonic() - start < DRAIN_LIMIT_S:
        pump(conns, time.monotonic() + 0.2, False)
        if time.monotonic() - max(c.last_data for c in conns) > DRAIN_QUIET_S:
            break
    out = tally(conns, False)
    out["drained"] = True
    print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser()
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket")
    where.add_argument("--tcp")
    p.add_argument("--tls", nargs=3, metavar=("CERT", "KEY", "CA"))
    p.add_argument("--spiffe-id", required=True)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--path", default=WATCH_PATH)
    p.add_argument("--partial", type=int, default=0)
    p.add_argument("--settle", type=float, default=10.0)
    args = p.parse_args()
    stop = {"now": False, "drain": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGUSR1, lambda *_: stop.update(drain=True))
    conns = []
    try:
        for _ in range(args.conns):
            conns.append(Conn(args))
    except OSError as e:
        print(json.dumps({"error": "connect: %s" % e, "connected": len(conns)}), flush=True)
        return 1
    pump(conns, time.monotonic() + args.settle, True)
    print(json.dumps(tally(conns, True)), flush=True)
    end = time.monotonic() + args.hold
    while not stop["now"] and time.monotonic() < end and not all(c.closed for c in conns):
        pump(conns, min(end, time.monotonic() + 0.5), False)
        if stop["drain"]:
            stop["drain"] = False
            drain(conns)
    print(json.dumps(tally(conns, False)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
