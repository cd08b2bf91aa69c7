#!/usr/bin/env python3
"""Raw peers for limits_test.sh (Debian's /usr/bin/python3, stdlib only).

  flood PORT N SRC HOLD_S [STOPFILE [h2]]
      Opens N TCP connections to 127.0.0.1:PORT (to [::1]:PORT when SRC is
      an IPv6 address) from address SRC (they send nothing), waits 1.5 s and
      prints "open=X closed=Y" (closed: the server closed or reset it), then
      holds the open ones until HOLD_S seconds passed or STOPFILE exists,
      printing the counts again whenever they change: a test waits for the
      line it expects, however slow the machine. PORT unix:PATH: a Unix
      socket (SRC is ignored). h2: each sends the HTTP/2 client preface and
      an empty SETTINGS frame, then nothing (a connection without a call).
  stall PORT MODE
      One connection that never finishes its handshake: MODE "silent" sends
      nothing, "partial" sends the first 3 bytes of a TLS record, "late"
      waits 0.8 s and then sends those, "trickle" sends a ClientHello one
      byte every 0.2 s. Prints the seconds until the server closed it (or
      "open" after 15 s).
  idle PORT CERT KEY CA
      An mTLS connection that speaks HTTP/2 (preface and SETTINGS) and then
      sends nothing. Prints "goaway=0|1 closed_after=S" (or "open" after 15 s).
"""
import os
import select
import socket
import ssl
import sys
import time


def still_open(s):
    """False once the server closed or reset |s| (what it sent before, such
    as an HTTP/2 GOAWAY, is read and dropped)."""
    try:
        while s.recv(65536, socket.MSG_DONTWAIT) != b"":
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def flood_socket(port, src):
    """A connection to |port| (a number, or unix:PATH) from |src|."""
    if port.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(port[5:])  # done at once: the backlog takes it
        s.setblocking(False)
        return s
    v6 = ":" in src
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.bind((src, 0))
    s.setblocking(False)
    try:
        s.connect(("::1" if v6 else "127.0.0.1", int(port)))
    except BlockingIOError:
        pass
    return s


def flood(port, n, src, hold, stopfile=None, h2=False):
    socks = [flood_socket(port, src) for _ in range(n)]
    if h2:
        for s in socks:
            select.select([], [s], [], 5)
            try:
                s.send(H2_PREFACE)
            except OSError:
                pass  # closed at once: counted below
    start = time.time()
    time.sleep(1.5)
    closed, last = 0, None
    while True:
        for s in [s for s in socks if not still_open(s)]:
            socks.remove(s)
            s.close()
            closed += 1
        if (len(socks), closed) != last:
            last = (len(socks), closed)
            print(f"open={len(socks)} closed={closed}", flush=True)
        if time.time() - start >= hold or (stopfile and os.path.exists(stopfile)):
            break
        time.sleep(0.05)
    for s in socks:
        s.close()


def client_hello():
    """A real ClientHello, taken from an ssl.MemoryBIO handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def wait_closed(s, start, limit=15.0):
    """Seconds until the peer closes |s| (reading and dropping what comes)."""
    while time.time() - start < limit:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                if s.recv(65536) == b"":
                    return time.time() - start
            except OSError:
                return time.time() - start
    return None


def stall(port, mode):
    # The clock starts before connect: the proxy's timer starts at accept,
    # so a time taken after connect returned (this process may be off the
    # CPU for 100 ms there on a loaded machine) can read under the timeout.
    start = time.time()
    s = socket.create_connection(("127.0.0.1", port))
    if mode in ("partial", "late"):
        time.sleep(0.8 if mode == "late" else 0)
        s.sendall(b"\x16\x03\x01")
    elif mode == "trickle":
        hello = client_hello()
        for i in range(len(hello) - 1):  # never the last byte
            try:
                s.send(hello[i:i + 1])
            except OSError:
                break
            r, _, _ = select.select([s], [], [], 0.2)
            if r:
                try:
                    if s.recv(65536) == b"":
                        break
                except OSError:
                    break
            if time.time() - start > 15:
                break
    t = wait_closed(s, start)
    print("open" if t is None else f"{t:.2f}", flush=True)


def idle(port, cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # SVIDs carry a SPIFFE URI, no DNS name
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port))
    s = ctx.wrap_socket(raw)
    start = time.time()
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    got = b""
    while time.time() - start < 15:
        r, _, _ = select.select([s], [], [], 0.05)
        if not r and not s.pending():
            continue
        try:
            d = s.recv(65536)
        except (ssl.SSLError, OSError):
            d = b""
        if d == b"":
            break
        got += d
        # Acknowledge the server's SETTINGS once, as a client must.
        if b"\x04\x00\x00\x00\x00\x00" in got[:64] and not getattr(idle, "acked", False):
            s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            idle.acked = True
    else:
        print("open", flush=True)
        return
    goaway = 0
    i = 0
    while i + 9 <= len(got):  # walk the frames for a GOAWAY (type 7)
        length = int.from_bytes(got[i:i + 3], "big")
        if got[i + 3] == 7:
            goaway = 1
        i += 9 + length
    print(f"goaway={goaway} closed_after={time.time() - start:.2f}", flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flood":
        flood(args[0], int(args[1]), args[2], float(args[3]), args[4] if len(args) > 4 else None,
              len(args) > 5 and args[5] == "h2")
    elif cmd == "stall":
        stall(int(args[0]), args[1])
    elif cmd == "idle":
        idle(int(args[0]), *args[1:4])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
