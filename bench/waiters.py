#!/usr/bin/env python3
"""waiters.py -- park N connections as waiters on one held lock, then drain them.

Used by bench/run for the "10,000 waiting connections" scenario (stdlib only):

 1. acquires NAME as the holder (ttl 120 s) and samples the service's VmRSS and
    Threads from /proc/PID/status;
 2. opens N keep-alive connections (non-blocking, in batches so the listen
    backlog never overflows), each POSTing acquire with wait_ms;
 3. once the service's lockservice_waiters gauge reports them all (or after a
    settle timeout), samples VmRSS and Threads again;
 4. releases the holder; every waiter granted the lock releases it at once on
    the same connection, which hands the lock to the next waiter, and so on;
 5. --after-s seconds after the last answer (default 10), samples VmRSS and
    Threads once more: the memory parked connections took must be given back;
 6. prints BENCH key=value lines: RSS and threads before/while waiting/after,
    bytes per waiter, how many were granted / refused / lost, the drain time
    and the Redis commands per grant during the drain (INFO commandstats
    deltas).
"""
import argparse
import json
import re
import selectors
import socket
import sys
import time


def emit(k, v):
    if isinstance(v, float):
        print(f"BENCH {k}={v:.3f}")
    else:
        print(f"BENCH {k}={v}")
    sys.stdout.flush()


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "Threads"):
                out[k] = int(v.split()[0])
    return out


def http(host, port, method, path, body=None, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    data = b"" if body is None else json.dumps(body).encode()
    req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if body is not None:
        req += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    s.sendall(req.encode() + b"\r\n" + data)
    buf = b""
    while True:
        r = parse_response(buf)
        if r is not None and method != "HEAD":
            break
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    if r is None:
        raise OSError(f"{method} {path}: incomplete answer {buf[:200]!r}")
    return r[0], r[1]


def redis_calls(port):
    """Sum of calls over INFO commandstats, minus the INFO commands themselves."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"INFO commandstats\r\n")
    buf = b""
    while True:
        buf += s.recv(65536)
        m = re.match(rb"\$(\d+)\r\n", buf)
        if m and len(buf) >= m.end() + int(m.group(1)):
            break
    s.close()
    return {name.decode(): int(calls)
            for name, calls in re.findall(rb"cmdstat_([^:]+):calls=(\d+)", buf)}


def calls_delta(a, b, internal):
    """(top-level commands, all commands incl. those run inside scripts)."""
    top = tot = 0
    for name, n in b.items():
        if name == "info":
            continue
        d = n - a.get(name, 0)
        tot += d
        if name not in internal:
            top += d
    return top, tot


class Conn:
    __slots__ = ("sock", "out", "inb", "state", "token", "t_answer")

    def __init__(self, sock, out):
        self.sock, self.out, self.inb = sock, out, b""
        self.state, self.token, self.t_answer = "connecting", None, None


def parse_response(buf):
    """Returns (status, body, rest) when buf holds a whole response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1")
    m = re.search(r"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    if len(buf) < end + 4 + n:
        return None
    status = int(head.split(" ", 2)[1])
    return status, buf[end + 4:end + 4 + n], buf[end + 4 + n:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--name", default="bench-10k")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--wait-ms", type=int, default=60000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--after-s", type=float, default=10.0,
                    help="sample RSS this long after the last answer")
    ap.add_argument("--internal", default="",
                    help="comma-separated commands the Lua scripts call")
    ap.add_argument("--mode", choices=("exclusive", "shared"), default="exclusive",
                    help="the waiters' mode; shared: the holder is exclusive, every waiter "
                         "keeps its grant until all are granted (redis_top_until_granted: "
                         "round trips from the holder's release to the last grant)")
    args = ap.parse_args()
    host, port, name = args.host, args.port, args.name

    st, body = http(host, port, "POST", f"/v1/locks/{name}/acquire", {"ttl_ms": 120000})
    if st != 200:
        print(f"waiters: holder acquire failed: {st} {body!r}", file=sys.stderr)
        return 1
    holder = json.loads(body)["token"]
    time.sleep(0.3)
    before = proc_status(args.pid)

    want = {"ttl_ms": 10000, "wait_ms": args.wait_ms}
    if args.mode == "shared":
        want["mode"] = "shared"
    acq = json.dumps(want).encode()
    req = (f"POST /v1/locks/{name}/acquire HTTP/1.1\r\nHost: {host}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(acq)}\r\n\r\n").encode() + acq
    sel = selectors.DefaultSelector()
    conns = []
    stats = {"granted": 0, "released": 0, "lock_held": 0, "other": 0, "lost": 0}
    open_count = 0

    def close(c):
        nonlocal open_count
        sel.unregister(c.sock)
        c.sock.close()
        c.state = "closed"
        open_count -= 1

    def on_event(c, mask, now, t_release):
        if c.state == "connecting" and mask & selectors.EVENT_WRITE:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                stats["lost"] += 1
                close(c)
                return
            c.state = "sending"
        if c.state == "sending" and mask & selectors.EVENT_WRITE:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                return
            c.out = c.out[n:]
            if not c.out:
                c.state = "waiting"
                sel.modify(c.sock, selectors.EVENT_READ, c)
            return
        if mask & selectors.EVENT_READ:
            try:
                chunk = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                stats["lost"] += 1
                close(c)
                return
            c.inb += chunk
            r = parse_response(c.inb)
            if r is None:
                return
            status, rbody, c.inb = r
            if c.state == "waiting":
                c.t_answer = now - t_release if t_release else 0.0
                if status == 200:
                    stats["granted"] += 1
                    tok = json.loads(rbody)["token"]
                    if args.mode == "shared":
                        c.token, c.state = tok, "granted"
                        return
                    rb = json.dumps({"token": tok}).encode()
                    c.out = (f"POST /v1/locks/{name}/release HTTP/1.1\r\nHost: {host}\r\n"
                             f"Content-Type: application/json\r\nConnection: close\r\n"
                             f"Content-Length: {len(rb)}\r\n\r\n").encode() + rb
                    c.state = "releasing"
                    c.sock.send(c.out)  # small; fits the socket buffer
                    return
                if status == 409 and b"lock_held" in rbody:
                    stats["lock_held"] += 1
                else:
                    stats["other"] += 1
                close(c)
            elif c.state == "releasing":
                if status == 200:
                    stats["released"] += 1
                else:
                    stats["other"] += 1
                close(c)

    def pump(timeout, t_release=None):
        for key, mask in sel.select(timeout):
            on_event(key.data, mask, time.monotonic(), t_release)

    # Open the connections in batches; wait for each batch to be sent.
    t0 = time.monotonic()
    for start in range(0, args.n, args.batch):
        for _ in range(min(args.batch, args.n - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((host, port))
            c = Conn(s, req)
            conns.append(c)
            sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
            open_count += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
                c.state in ("connecting", "sending") for c in conns[start:]):
            pump(0.05)
    t_open = time.monotonic() - t0

    # Wait for the service to report them all as waiters.
    gauge = -1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pump(0.1)
        st, m = http(host, port, "GET", "/metrics")
        mm = re.search(rb"(?m)^lockservice_waiters(?:\{[^}]*\})?\s+(\d+)", m)
        gauge = int(mm.group(1)) if mm else -1
        if gauge >= args.n or gauge < 0 and time.monotonic() - t0 > 3:
            break
    time.sleep(0.5)
    pump(0)
    during = proc_status(args.pid)
    parked = sum(1 for c in conns if c.state == "waiting")

    emit("waiters", args.n)
    emit("parked", parked)
    emit("waiters_gauge", gauge)
    emit("open_s", t_open)
    emit("rss_before_kb", before["VmRSS"])
    emit("rss_waiting_kb", during["VmRSS"])
    emit("threads_before", before["Threads"])
    emit("threads_waiting", during["Threads"])
    emit("bytes_per_waiter", (during["VmRSS"] - before["VmRSS"]) * 1024.0 / max(parked, 1))

    # Drain: release the holder; each grant releases at once.
    calls0 = redis_calls(args.redis_port)
    t_release = time.monotonic()
    st, body = http(host, port, "POST", f"/v1/locks/{name}/release", {"token": holder})
    if st != 200:
        print(f"waiters: holder release failed: {st} {body!r}", file=sys.stderr)
    deadline = t_release + args.wait_ms / 1000.0 + 5

    def answered():
        return stats["granted"] + stats["lock_held"] + stats["other"] + stats["lost"]

    if args.mode == "shared":
        while answered() < args.n and time.monotonic() < deadline:
            pump(0.2, t_release)
        until_granted = time.monotonic() - t_release
        top, _ = calls_delta(calls0, redis_calls(args.redis_port), set(args.internal.split(",")))
        emit("until_granted_s", until_granted)
        emit("redis_top_until_granted", top)
        for c in conns:
            if c.state == "granted":
                rb = json.dumps({"token": c.token}).encode()
                c.out = (f"POST /v1/locks/{name}/release HTTP/1.1\r\nHost: {host}\r\n"
                         f"Content-Type: application/json\r\nConnection: close\r\n"
                         f"Content-Length: {len(rb)}\r\n\r\n").encode() + rb
                c.state = "releasing"
                c.sock.send(c.out)
    while open_count > 0 and time.monotonic() < deadline:
        pump(0.2, t_release)
    drain = time.monotonic() - t_release
    calls1 = redis_calls(args.redis_port)
    stuck = sum(1 for c in conns if c.state != "closed")
    for c in conns:
        if c.state != "closed":
            close(c)
    answers = sorted(c.t_answer for c in conns if c.t_answer is not None)

    def pct(p):
        return answers[min(len(answers) - 1, int(len(answers) * p / 100))] if answers else 0.0

    emit("granted", stats["granted"])
    emit("released", stats["released"])
    emit("lock_held", stats["lock_held"])
    emit("other", stats["other"])
    emit("lost", stats["lost"])
    emit("unanswered", stuck)
    emit("drain_s", drain)
    emit("grants_per_s", stats["granted"] / drain if drain > 0 else 0.0)
    emit("answer_p50_ms", pct(50) * 1000)
    emit("answer_p99_ms", pct(99) * 1000)
    top, tot = calls_delta(calls0, calls1, set(args.internal.split(",")))
    g = max(stats["granted"], 1)
    emit("redis_top_per_grant", top / g)
    emit("redis_all_per_grant", tot / g)
    time.sleep(args.after_s)
    after = proc_status(args.pid)
    emit("after_s", args.after_s)
    emit("rss_after_kb", after["VmRSS"])
    emit("threads_after", after["Threads"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
