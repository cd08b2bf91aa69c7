#!/usr/bin/python3
"""The well-behaved caller that runs beside each attack (python3-h2).

  good_client.py --port P [--requests N] [--seconds S] [--workers C]
                 [--timeout T] [--path /] [--allow-503]

C workers, each on its own HTTP/2 connection to 127.0.0.1:P, send N requests
in all, spread over S seconds. A request succeeds when its whole response
arrives within T seconds with status 200; with --allow-503, a 503 that says
why (x-wisp-error) is an answer too (counted apart). A broken connection is
replaced. Requests not started by S+T seconds count as failed, so the run
ends within S+2T seconds however stuck the proxy is. Prints one summary line:
  good: total=N ok=K answered_503=M timeout=.. reset=.. error=.. max_ms=.. p99_ms=..
and exits 0 (the test judges the numbers).
"""
import argparse
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

HOST = "127.0.0.1"


class Outcome:
    def __init__(self, kind, ms, detail=""):
        self.kind, self.ms, self.detail = kind, ms, detail


def _connect(port, timeout):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    c.increment_flow_control_window(16 << 20)
    s.sendall(c.data_to_send())
    return s, c


def _request(port, conn, path, timeout):
    """One request; returns (Outcome, conn or None if the connection is done)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    ms = lambda: (time.monotonic() - t0) * 1000.0
    try:
        if conn is None:
            conn = _connect(port, timeout)
        s, c = conn
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", path),
                             (":authority", f"{HOST}:{port}"), ("user-agent", "wisp-good-client")],
                       end_stream=True)
        s.sendall(c.data_to_send())
        status, reason = None, ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Outcome("timeout", ms(), path), None
            s.settimeout(left)
            data = s.recv(1 << 16)
            if not data:
                return Outcome("error", ms(), "connection closed"), None
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    hdrs = dict(ev.headers)
                    status = hdrs.get(":status")
                    reason = hdrs.get("x-wisp-error", "")
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    s.sendall(c.data_to_send())
                    return Outcome("reset", ms(), f"RST_STREAM {ev.error_code}"), (s, c)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    if ev.last_stream_id is not None and sid <= ev.last_stream_id:
                        continue  # our stream still finishes
                    return Outcome("error", ms(), f"GOAWAY {ev.error_code}"), None
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    s.sendall(c.data_to_send())
                    if status == "200":
                        return Outcome("ok", ms()), (s, c)
                    if status == "503" and reason:
                        return Outcome("answered_503", ms(), reason), (s, c)
                    return Outcome("error", ms(), f"status {status} {reason}"), (s, c)
            s.sendall(c.data_to_send())
    except socket.timeout:
        return Outcome("timeout", ms(), path), None
    except (OSError, h2.exceptions.ProtocolError) as e:
        return Outcome("error", ms(), f"{type(e).__name__}: {e}"), None


def _worker(args, n, interval, out, lock):
    conn = None
    start = time.monotonic()
    # Requests not started by then count as failed (a stalled proxy must
    # not stretch the test): one timeout's grace after the planned end.
    stop = start + args.seconds + args.timeout
    for i in range(n):
        wait = start + i * interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if time.monotonic() >= stop:
            break
        o, new = _request(args.port, conn, args.path, args.timeout)
        if new is None and conn is not None:
            try:
                conn[0].close()
            except OSError:
                pass
        conn = new
        with lock:
            out.append(o)
    if conn is not None:
        conn[0].close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--path", default="/")
    ap.add_argument("--allow-503", action="store_true")
    args = ap.parse_args()
    out, lock = [], threading.Lock()
    per = max(1, args.requests // args.workers)
    interval = args.seconds / per
    threads = [threading.Thread(target=_worker, args=(args, per, interval, out, lock), daemon=True)
               for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + 2 * args.timeout + 5)
    kinds = {"ok": 0, "answered_503": 0, "timeout": 0, "reset": 0, "error": 0, "not_started": 0}
    kinds["not_started"] = per * args.workers - len(out)
    first = {}
    for o in out:
        kinds[o.kind] += 1
        if o.kind != "ok" and o.kind not in first:
            first[o.kind] = o.detail
    lat = sorted(o.ms for o in out) or [0.0]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    good = kinds["ok"] + (kinds["answered_503"] if args.allow_503 else 0)
    print(f"good: total={per * args.workers} ok={kinds['ok']} answered_503={kinds['answered_503']} "
          f"timeout={kinds['timeout']} reset={kinds['reset']} error={kinds['error']} "
          f"not_started={kinds['not_started']} "
          f"success={good} max_ms={lat[-1]:.0f} p99_ms={p99:.0f}"
          + "".join(f" first_{k}=\"{v}\"" for k, v in first.items()), flush=True)


if __name__ == "__main__":
    main()
