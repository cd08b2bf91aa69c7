#!/usr/bin/python3
"""A stand-in API server that never finishes answering (webhook_test.sh):
TLS as the real one, then, to every request, an HTTP head a byte every
0.5 s. Per-read timeouts never fire on it; only a deadline for the whole
call ends the call.

    trickle.py PORT CERT KEY

Stops by itself after 120 s."""
import socket
import ssl
import sys
import threading
import time

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
end = time.monotonic() + 120


def serve(conn):
    try:
        with ctx.wrap_socket(conn, server_side=True) as s:
            s.recv(65536)
            print("request", flush=True)
            answer = b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 10000
            for i in range(len(answer)):
                if time.monotonic() > end:
                    return
                s.send(answer[i:i + 1])
                time.sleep(0.5)
    except OSError:
        print("closed by the client", flush=True)


with socket.create_server(("127.0.0.1", port)) as lsock:
    lsock.settimeout(1)
    while time.monotonic() < end:
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
