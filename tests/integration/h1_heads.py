#!/usr/bin/env python3
"""Half-sent HTTP/1 heads: h1_heads.py PORT N HOLD_S

Opens N connections to PORT, each sending a 60 KiB head without its final
empty line, then reads what each gets back for up to 3 s and prints
"refused=K first=<status line and x-wisp-error of one answer>". It keeps the
unanswered connections open until HOLD_S seconds passed or stdin closes,
then closes them all. Exit 0; the caller checks the output."""
import select
import socket
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
head = b"GET /half HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-P%03d: %s\r\n" % (i, b"a" * 460) for i in range(128))
socks = []
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        continue
    try:
        s.sendall(head)
    except OSError:
        pass  # refused and closed while sending: its answer may still be read
    s.setblocking(False)
    socks.append(s)
answers = {}
end = time.monotonic() + 3
while time.monotonic() < end:
    waiting = [s for s in socks if s not in answers]
    if not waiting:
        break
    ready, _, _ = select.select(waiting, [], [], 0.2)
    for s in ready:
        try:
            answers[s] = s.recv(4096)
        except OSError:
            answers[s] = b""
first = b""
for a in answers.values():
    if a:
        first = b" ".join(l for l in a.split(b"\r\n") if l.startswith(b"HTTP/") or l.startswith(b"x-wisp-error"))
        break
print("refused=%d first=%s" % (sum(1 for a in answers.values() if a.startswith(b"HTTP/1.1 503")), first.decode()),
      flush=True)
end = time.monotonic() + hold
while time.monotonic() < end:
    if select.select([sys.stdin], [], [], 0.5)[0] and not sys.stdin.read(1):
        break
for s in socks:
    s.close()
print("closed", flush=True)
