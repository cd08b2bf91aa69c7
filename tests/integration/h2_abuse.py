#!/usr/bin/python3
"""h2_abuse.py - hostile HTTP/2 callers for wisp's limit tests (h2_limits_test.sh).

Each mode runs for a bounded time against 127.0.0.1:PORT (h2c, prior
knowledge) and prints one JSON line of what it saw on stdout.

  rapid-reset --port P --conns N --seconds S
      N connections each send HEADERS+RST_STREAM(CANCEL) pairs as fast as
      they can (raw frames: python3-h2 refuses to misbehave this fast),
      reconnecting when the proxy closes them. Reports pairs sent, GOAWAYs
      received by error code, connections made.
  hold --port P --conns N --streams M --path PATH --seconds S
      N connections each open M GET streams on PATH and keep them open
      (reading what comes), then close. Reports streams opened and the
      statuses received.
  zero-window --port P --conns N --streams M --path PATH --seconds S
      N connections that grant no flow-control window (SETTINGS
      INITIAL_WINDOW_SIZE 0, no WINDOW_UPDATE) each open M GET streams on
      PATH, so every response waits in the proxy. Reports streams opened.
  upload --port P --hold-path HOLD --streams M --path PATH --seconds S
      One connection opens a GET on HOLD (to hold the upstream stream the
      proxy lets it have), then M POST streams on PATH, and sends their
      bodies as fast as flow control lets it. Reports the body bytes the
      proxy let it send.
"""
import argparse
import json
import select
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADERS, FRAME_RST_STREAM, FRAME_SETTINGS, FRAME_GOAWAY, FRAME_PING = 1, 3, 4, 7, 6
FLAG_END_STREAM, FLAG_END_HEADERS, FLAG_ACK = 0x1, 0x4, 0x1
CANCEL = 0x8
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               7: "REFUSED_STREAM", 8: "CANCEL", 11: "ENHANCE_YOUR_CALM"}


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream_id) + payload


def static_header_block(authority):
    """GET / over http, from HPACK's static table only (so every block is
    independent of the encoder's dynamic table)."""
    a = authority.encode()
    return bytes([0x82, 0x86, 0x84, 0x01, len(a)]) + a  # :method GET, :scheme http, :path /, :authority lit


class RawConn:
    """A raw-frame client connection; parses just enough to see GOAWAY."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.inbuf = b""
        self.goaway = None
        self.closed = False
        self.next_id = 1
        self.out = PREFACE + frame(FRAME_SETTINGS, 0, 0)

    def pump_read(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.closed = True
                    return
                self.inbuf += data
                if len(data) < 65536:
                    break
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True
            return
        while len(self.inbuf) >= 9:
            length = int.from_bytes(self.inbuf[0:3], "big")
            if len(self.inbuf) < 9 + length:
                break
            ftype, flags = self.inbuf[3], self.inbuf[4]
            payload = self.inbuf[9:9 + length]
            self.inbuf = self.inbuf[9 + length:]
            if ftype == FRAME_SETTINGS and not flags & FLAG_ACK:
                self.out += frame(FRAME_SETTINGS, FLAG_ACK, 0)
            elif ftype == FRAME_PING and not flags & FLAG_ACK:
                self.out += frame(FRAME_PING, FLAG_ACK, 0, payload)
            elif ftype == FRAME_GOAWAY and self.goaway is None:
                self.goaway = struct.unpack(">I", payload[4:8])[0]

    def pump_write(self):
        if not self.out:
            return
        try:
            n = self.sock.send(self.out)
            self.out = self.out[n:]
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def rapid_reset(args):
    block = static_header_block("127.0.0.1:%d" % args.port)
    deadline = time.monotonic() + args.seconds
    conns = []
    stats = {"mode": "rapid-reset", "pairs_sent": 0, "connections": 0, "goaway": {}, "closed_by_proxy": 0,
             "connect_errors": 0}
    batch = 200

    def open_conn():
        try:
            c = RawConn(args.port)
        except OSError:
            stats["connect_errors"] += 1
            return None
        stats["connections"] += 1
        return c

    for _ in range(args.conns):
        c = open_conn()
        if c:
            conns.append(c)
    while time.monotonic() < deadline:
        for i, c in enumerate(conns):
            if c is None:
                conns[i] = open_conn()
                continue
            c.pump_read()
            if c.goaway is not None or c.closed:
                stats["pairs_sent"] -= len(c.out) // (2 * 9 + len(block) + 4)
                if c.goaway is not None:
                    name = ERROR_NAMES.get(c.goaway, str(c.goaway))
                    stats["goaway"][name] = stats["goaway"].get(name, 0) + 1
                if c.closed:
                    stats["closed_by_proxy"] += 1
                c.close()
                conns[i] = open_conn()
                continue
            if len(c.out) < 256 * 1024:
                chunks = []
                for _ in range(batch):
                    sid = c.next_id
                    c.next_id += 2
                    chunks.append(frame(FRAME_HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, sid, block))
                    chunks.append(frame(FRAME_RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
                c.out += b"".join(chunks)
                stats["pairs_sent"] += batch
            c.pump_write()
        socks = [c.sock for c in conns if c is not None]
        if socks:
            select.select(socks, [s for s in socks], [], 0.01)
    pair_len = 2 * 9 + len(block) + 4
    for c in conns:
        if c is not None:
            stats["pairs_sent"] -= len(c.out) // pair_len  # queued here, never written
            c.close()
    return stats


def h2_client(port, window_zero):
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    if window_zero:
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0,
            h2.settings.SettingCodes.ENABLE_PUSH: 0})
    conn.initiate_connection()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(conn.data_to_send())
    sock.setblocking(False)
    return conn, sock


def open_streams(args, window_zero, mode):
    stats = {"mode": mode, "streams_opened": 0, "statuses": {}, "resets": 0, "goaway": 0}
    conns = []
    for _ in range(args.conns):
        conn, sock = h2_client(args.port, window_zero)
        conns.append({"conn": conn, "sock": sock, "opened": False, "dead": False})
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % args.port),
               (":path", args.path)]
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for c in conns:
            conn, sock = c["conn"], c["sock"]
            if c["dead"]:
                continue
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                c["dead"] = True
                continue
            events = []
            if data:
                try:
                    events = conn.receive_data(data)
                except Exception:  # a protocol error would show in the counts
                    c["dead"] = True
            for ev in events:
                if isinstance(ev, h2.events.RemoteSettingsChanged) and not c["opened"]:
                    # The proxy's limit is known now: open up to it, at once.
                    c["opened"] = True
                    for _ in range(min(args.streams, conn.remote_settings.max_concurrent_streams)):
                        conn.send_headers(conn.get_next_available_stream_id(), headers, end_stream=True)
                        stats["streams_opened"] += 1
                elif isinstance(ev, h2.events.ResponseReceived):
                    st = dict(ev.headers).get(":status", "?")
                    stats["statuses"][st] = stats["statuses"].get(st, 0) + 1
                elif isinstance(ev, h2.events.StreamReset):
                    stats["resets"] += 1
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    stats["goaway"] += 1
                elif isinstance(ev, h2.events.DataReceived) and not window_zero:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = conn.data_to_send()
            if out:
                try:
                    sock.setblocking(True)
                    sock.sendall(out)
                    sock.setblocking(False)
                except OSError:
                    c["dead"] = True
        time.sleep(0.02)
    for c in conns:
        c["sock"].close()
    return stats


def upload(args):
    conn, sock = h2_client(args.port, False)
    stats = {"mode": "upload", "streams_opened": 0, "body_bytes_sent": 0, "statuses": {}}
    base = [(":scheme", "http"), (":authority", "127.0.0.1:%d" % args.port)]
    chunk = b"x" * 16384
    streams = []
    opened = False
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            data = None
        except OSError:
            break
        if data == b"":
            break
        for ev in conn.receive_data(data) if data else []:
            if isinstance(ev, h2.events.RemoteSettingsChanged) and not opened:
                opened = True
                conn.send_headers(conn.get_next_available_stream_id(),
                                  [(":method", "GET"), (":path", args.hold_path)] + base, end_stream=True)
                for _ in range(min(args.streams, conn.remote_settings.max_concurrent_streams - 1)):
                    sid = conn.get_next_available_stream_id()
                    conn.send_headers(sid, [(":method", "POST"), (":path", args.path)] + base)
                    streams.append(sid)
                    stats["streams_opened"] += 1
            elif isinstance(ev, h2.events.ResponseReceived):
                st = dict(ev.headers).get(":status", "?")
                stats["statuses"][st] = stats["statuses"].get(st, 0) + 1
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id in streams:
                streams.remove(ev.stream_id)
        for sid in list(streams):
            try:
                room = min(conn.local_flow_control_window(sid), len(chunk))
            except Exception:  # closed by the proxy
                streams.remove(sid)
                continue
            if room > 0:
                conn.send_data(sid, chunk[:room])
                stats["body_bytes_sent"] += room
        out = conn.data_to_send()
        if out:
            sock.setblocking(True)
            sock.sendall(out)
            sock.setblocking(False)
        time.sleep(0.01)
    sock.close()
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["rapid-reset", "hold", "zero-window", "upload"])
    ap.add_argument("--hold-path", default="/slow?ms=20000")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--path", default="/")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    args.seconds = min(args.seconds, 60.0)  # bounded, whatever the caller says
    if args.mode == "rapid-reset":
        out = rapid_reset(args)
    elif args.mode == "upload":
        out = upload(args)
    else:
        out = open_streams(args, args.mode == "zero-window", args.mode)
    print(json.dumps(out, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
