"""Processes for the tests: a private redis-server and lockservice on free
loopback ports (never 6379 or 8080), stopped by PID, and a proxy that
answers one renewal with an HTML 502 the way nginx does.

LOCKSERVICE_BIN names the service binary (default: ./lockservice at the
repository root), REDIS_SERVER the Redis one (default: redis-server).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                    ".."))


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in (6379, 8080):
            return port


def _get(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def wait_until(cond, seconds, step=0.02):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lockservice-pyredis.")
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        bin_ = os.environ.get("REDIS_SERVER") or "redis-server"
        self.proc = subprocess.Popen(
            [bin_, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) \
                        as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        if not wait_until(up, 10):
            raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    """lockservice against redis on a port of its own (kept across
    restarts)."""

    def __init__(self, redis, extra=()):
        self.redis = redis
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = list(extra)
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(
            prefix="lockservice-py.", suffix=".log", delete=False)
        self.start()

    def start(self):
        bin_ = os.environ.get("LOCKSERVICE_BIN") or os.path.join(
            ROOT, "lockservice")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LOCKSERVICE_")}
        self.proc = subprocess.Popen(
            [bin_, "--listen", f"127.0.0.1:{self.port}", "--redis",
             f"redis://127.0.0.1:{self.redis.port}", "--redis-timeout-ms",
             "300", "--shutdown-timeout-ms", "1000"] + self.extra,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env=env)
        if not wait_until(lambda: _get(self.url + "/healthz") == 200, 10):
            raise RuntimeError("lockservice did not start")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def ready(self, seconds=10):
        return wait_until(lambda: _get(self.url + "/readyz") == 200, seconds)

    def close(self):
        self.stop()
        self.log.close()
        os.unlink(self.log.name)


BAD_GATEWAY_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>"
                    b"\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>"
                    b"\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class Proxy:
    """Passes requests to upstream_port, one per connection, except the
    first renewal, which gets nginx's HTML 502."""

    def __init__(self, upstream_port, cut_first_acquire=False):
        # cut_first_acquire: instead, pass the first acquire on (the
        # service grants it) and close the connection without its answer.
        self.upstream_port = upstream_port
        self.cut_first_acquire = cut_first_acquire
        self.acquires = 0
        self.request_ids = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.renewals = 0
        self.bad_gateway = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            body += chunk
        return head, body

    def _relay(self, conn, head, body, discard=False):
        lines = [ln for ln in head.split(b"\r\n")
                 if not ln.lower().startswith(b"connection:")]
        request = b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body
        with socket.create_connection(("127.0.0.1", self.upstream_port),
                                      5) as up:
            up.sendall(request)
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                if not discard:
                    conn.sendall(chunk)

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    req = self._read_request(conn)
                    if req is None:
                        continue
                    head, body = req
                    first_line = head.split(b"\r\n")[0]
                    if b"/acquire " in first_line:
                        self.acquires += 1
                        try:
                            rid = json.loads(body).get("request_id")
                        except ValueError:
                            rid = None
                        self.request_ids.append(rid)
                        if self.cut_first_acquire and self.acquires == 1:
                            self._relay(conn, head, body, discard=True)
                            continue
                    if self.cut_first_acquire:
                        self._relay(conn, head, body)
                        continue
                    if b"/renew " in first_line:
                        self.renewals += 1
                        if self.renewals == 1:
                            self.bad_gateway += 1
                            conn.sendall(
                                b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx"
                                b"\r\nContent-Type: text/html\r\n"
                                b"Content-Length: %d\r\nConnection: close"
                                b"\r\n\r\n" % len(BAD_GATEWAY_HTML)
                                + BAD_GATEWAY_HTML)
                            continue
                    self._relay(conn, head, body)
                except OSError:
                    continue

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()
