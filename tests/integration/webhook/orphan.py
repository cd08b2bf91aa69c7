#!/usr/bin/python3
"""Fire-and-forget reviews, as an attacker would send them: threads that
each connect over TLS from SOURCE_IP, POST one large review whole, and
close at once, until SECONDS have passed or MAX reviews were sent.
usage: orphan.py PORT BODY.json SECONDS THREADS SOURCE_IP MAX"""
import socket
import ssl
import sys
import threading
import time

port, body, secs, threads = int(sys.argv[1]), open(sys.argv[2], "rb").read(), float(sys.argv[3]), int(sys.argv[4])
source, most = sys.argv[5], int(sys.argv[6])
req = (b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
       % len(body)) + body
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
sent = [0, 0]
lock = threading.Lock()
end = time.time() + secs


def worker():
    while time.time() < end:
        with lock:
            if sent[0] >= most:
                return
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
            t = ctx.wrap_socket(s)
            t.sendall(req)
            time.sleep(0.05)  # the server has it all by now
            t.close()
            with lock:
                sent[0] += 1
                if sent[0] == 1:
                    print("orphan.py: the first review sent and abandoned", flush=True)
        except OSError:
            with lock:
                sent[1] += 1
            time.sleep(0.05)


ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("orphan.py: %d reviews sent whole and abandoned, %d attempts failed" % tuple(sent))
