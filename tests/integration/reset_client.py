#!/usr/bin/python3
"""Callers for reset tests: CONNS h2c connections to 127.0.0.1:PORT, each
with up to STREAMS POST requests in flight, N requests in all, each with its
own path (PREFIX/i), so a duplicate upstream can be told apart.
  reset_client.py PORT CONNS STREAMS N PREFIX SECONDS [BODY_BYTES]
Prints one line per request: "PATH STATUS [x-wisp-error]", then
"summary 200=X 502=Y ..." (status 0: no answer, e.g. a reset stream)."""
import collections
import select
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events

PORT, CONNS, STREAMS, N, PREFIX, SECS = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                         sys.argv[5], float(sys.argv[6]))
BODY = int(sys.argv[7]) if len(sys.argv) > 7 else 2
END = time.monotonic() + SECS
todo = list(range(N))
results = {}


class C:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.open = {}  # stream -> [path, status, err]
        self.body = {}  # stream -> request bytes still to send
        self.dead = False
        self.flush()

    def flush(self):
        d = self.h2.data_to_send()
        if d:
            self.s.sendall(d)

    def fill(self):
        while (not self.dead and todo and len(self.open) < STREAMS and
               self.h2.open_outbound_streams < self.h2.remote_settings.max_concurrent_streams):
            i = todo.pop()
            path = "%s/%d" % (PREFIX, i)
            sid = self.h2.get_next_available_stream_id()
            self.h2.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "orders"),
                                       (":path", path), ("content-length", str(BODY))])
            self.open[sid] = [path, 0, ""]
            self.body[sid] = BODY
        self.send_bodies()
        self.flush()

    def send_bodies(self):
        """What the windows allow of the request bodies still to send."""
        for sid, left in list(self.body.items()):
            if sid not in self.open:
                del self.body[sid]
                continue
            n = min(left, self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            while n > 0 or left == 0:
                self.h2.send_data(sid, b"x" * n, end_stream=(left == n))
                left -= n
                if left == 0:
                    break
                n = min(left, self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if left == 0:
                del self.body[sid]
            else:
                self.body[sid] = left

    def on_data(self, d):
        if not d:
            self.die()
            return
        for ev in self.h2.receive_data(d):
            if isinstance(ev, h2.events.ResponseReceived):
                h = dict(ev.headers)
                if ev.stream_id in self.open:
                    self.open[ev.stream_id][1] = int(h.get(":status", "0"))
                    self.open[ev.stream_id][2] = h.get("x-wisp-error", "")
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                r = self.open.pop(ev.stream_id, None)
                if r:
                    if isinstance(ev, h2.events.StreamReset):
                        r[1], r[2] = 0, "reset %s" % ev.error_code
                    results[r[0]] = (r[1], r[2])
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.die()
                return
        self.fill()

    def die(self):
        self.dead = True
        for r in self.open.values():
            results[r[0]] = (0, "connection lost")
        self.open.clear()
        self.s.close()


conns = [C() for _ in range(CONNS)]
for c in conns:
    c.fill()
while time.monotonic() < END and len(results) < N:
    live = [c for c in conns if not c.dead]
    if not live:
        if todo:
            conns = [C() for _ in range(CONNS)]
            for c in conns:
                c.fill()
            continue
        break
    r, _, _ = select.select([c.s for c in live], [], [], 0.5)
    for c in live:
        if c.s in r:
            try:
                c.on_data(c.s.recv(65536))
            except OSError:
                c.die()
for path, (st, err) in sorted(results.items()):
    print(path, st, err)
cnt = collections.Counter(st for st, _ in results.values())
print("summary", " ".join("%s=%d" % kv for kv in sorted(cnt.items())), "missing=%d" % (N - len(results)))
