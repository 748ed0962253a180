"""A client for lockservice: distributed locks over HTTP/JSON.

Standard library only. The lock is a lease: it is acquired with a TTL
(waiting on the server up to ``wait`` seconds while someone else holds it),
renewed in the background every ttl/3, and released at the end::

    import lockservice

    client = lockservice.Client("http://127.0.0.1:8080")
    with client.lock("orders", ttl=30, wait=10, owner="nightly") as lease:
        for batch in batches:
            lease.raise_if_lost()              # stop before writing
            store.write(batch, fence=lease.fence)

A renewal that fails with a network error, a timeout, a 5xx or an answer
that is not JSON (a proxy's HTML error page) is retried with backoff (100 ms
doubling up to ttl/10, with jitter) until the lease would end. The lease is
*lost* when a renewal is refused (409 ``not_held`` / ``not_owner``, or any
other 4xx), or when no renewal succeeded by ttl - ttl/10 after the last one
that did, which is before the service's own expiry. Then ``lease.lost`` (a
``threading.Event``) is set, an error is logged on the ``lockservice``
logger, and ``on_lost(lease)`` is called if given.

Pass ``lease.fence`` with every write to what the lock protects, and have
that resource refuse a fence older than the last one it saw.

An acquire carries a random ``request_id`` and is tried again with the same
one after a network error, a 5xx or an answer that is not JSON (up to 5
attempts, backing off from 0.2 s to 2 s, within ``wait`` plus 10 s): the
service answers a grant whose answer was lost again (``"replayed": true``)
instead of granting a second lease.

Release never raises: it returns a :class:`Released`; after a loss that is
``Released(released=False, code="not_held", ...)``.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import re
import secrets
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional

__all__ = [
    "Client",
    "Lease",
    "Semaphore",
    "Released",
    "LockServiceError",
    "NotAcquired",
    "LeaseLost",
    "Unavailable",
    "DEFAULT_URL",
]
__version__ = "1.0.0"

DEFAULT_URL = "http://127.0.0.1:8080"
log = logging.getLogger("lockservice")

_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PREFIX = re.compile(r"^[A-Za-z0-9._:-]{0,128}$")
_FIRST_BACKOFF = 0.1
_ANSWER_SLACK = 10.0  # how much longer than wait an acquire may take
_RELEASE_BUDGET = 10.0
_ACQUIRE_ATTEMPTS = 5
_ACQUIRE_FIRST_BACKOFF = 0.2
_ACQUIRE_MAX_BACKOFF = 2.0


class LockServiceError(Exception):
    """A call did not succeed.

    ``status`` is the HTTP status (0 when no answer came), ``code`` the
    problem's ``code`` (``""`` when there is none), ``detail`` says why.
    """

    def __init__(self, message: str, status: int = 0, code: str = "",
                 detail: str = "", body: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body or {}


class NotAcquired(LockServiceError):
    """The lock was still held when ``wait`` ran out (409 ``lock_held``).

    ``retry_after`` is the holder's remaining TTL in seconds.
    """

    @property
    def retry_after(self) -> float:
        return float(self.body.get("retry_after_ms", 0)) / 1000.0


class LeaseLost(LockServiceError):
    """The lease is gone: 409 ``not_held`` / ``not_owner``, or it ran out."""


class Unavailable(LockServiceError):
    """No usable answer: network error, timeout, 5xx, or a body that is not
    JSON. Worth trying again later."""


@dataclass(frozen=True)
class Released:
    """What a release found. ``released`` is true when this lease's hold was
    dropped (``count`` holds are left); otherwise ``code`` says why not:
    ``not_held`` / ``not_owner`` (the lease had ended), ``unavailable`` (no
    answer; the lease ends by itself when its TTL runs out), or another
    problem code."""

    released: bool
    count: Optional[int] = None
    code: str = ""
    detail: str = ""


# ---------------------------------------------------------------- HTTP

_OK, _PROBLEM, _TRANSIENT = "ok", "problem", "transient"


@dataclass
class _Answer:
    kind: str
    status: int = 0
    body: Optional[Dict[str, Any]] = None
    code: str = ""
    text: str = ""
    unsent: bool = False  # it never reached the service: safe to repeat

    def error(self, what: str) -> LockServiceError:
        body = self.body or {}
        detail = str(body.get("detail", self.text))
        message = f"{what}: {self.text}"
        if self.kind == _TRANSIENT:
            return Unavailable(message, self.status, self.code, detail, body)
        if self.code in ("lock_held", "no_permits"):
            return NotAcquired(message, self.status, self.code, detail, body)
        if self.code in ("not_held", "not_owner"):
            return LeaseLost(message, self.status, self.code, detail, body)
        return LockServiceError(message, self.status, self.code, detail, body)


def _classify(status: int, ctype: str, raw: bytes) -> _Answer:
    """Sorts an answer into success, a refusal (a 4xx problem) or a
    transient failure (5xx, 408, 429, or a body that is not a JSON object:
    a proxy's HTML error page)."""
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return _Answer(_TRANSIENT, status, None, "",
                       f"HTTP {status} with a {ctype or 'untyped'} body "
                       f"that is not JSON")
    code = body.get("code") if isinstance(body.get("code"), str) else ""
    if 200 <= status < 300:
        return _Answer(_OK, status, body, "", f"HTTP {status}")
    text = f"{status} {code or '(no code)'}"
    if isinstance(body.get("detail"), str):
        text += ": " + body["detail"]
    if 400 <= status < 500 and status not in (408, 429) and code:
        return _Answer(_PROBLEM, status, body, code, text)
    return _Answer(_TRANSIENT, status, body, code, text)


def _read_key(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        key = f.readline().rstrip("\r\n")
    if not key or any(ch.isspace() or ord(ch) < 32 for ch in key):
        raise ValueError(f"API key file {path}: the first line must hold "
                         f"the key alone")
    return key


class Client:
    """A lockservice at ``url`` (default ``$LOCKSERVICE_URL``, else
    http://127.0.0.1:8080), with the API key read from ``api_key_file``
    (default ``$LOCKSERVICE_API_KEY_FILE``; its first line, the key alone).
    ``timeout`` bounds each call that does not wait for a lock."""

    def __init__(self, url: Optional[str] = None, *,
                 api_key_file: Optional[str] = None,
                 timeout: float = 10.0):
        url = url or os.environ.get("LOCKSERVICE_URL") or DEFAULT_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad service URL {url!r}")
        self.url = url.rstrip("/")
        self._parts = parts
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        key_file = api_key_file or os.environ.get("LOCKSERVICE_API_KEY_FILE")
        self._auth = f"Bearer {_read_key(key_file)}" if key_file else None

    def _call(self, method: str, path: str, body: Optional[dict],
              timeout: float) -> _Answer:
        """One request, on a connection of its own; never raises."""
        parts = self._parts
        cls = (http.client.HTTPSConnection if parts.scheme == "https"
               else http.client.HTTPConnection)
        conn = cls(parts.hostname, parts.port, timeout=max(timeout, 0.001))
        headers = {"Accept": "application/json", "Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._auth:
            headers["Authorization"] = self._auth
        connected = False
        try:
            conn.connect()
            connected = True
            conn.request(method, self._prefix + path, body=data,
                         headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return _classify(resp.status,
                             resp.getheader("Content-Type", ""), raw)
        except (OSError, http.client.HTTPException) as err:
            text = str(err) or type(err).__name__
            return _Answer(_TRANSIENT, 0, None, "", text,
                           unsent=not connected)
        finally:
            conn.close()

    def _call_within(self, method: str, path: str, body: Optional[dict],
                     timeout: float, stop: threading.Event) -> _Answer:
        """_call on a thread of its own, given up after timeout seconds or
        when stop is set: a socket timeout bounds each read, not the whole
        answer, and a renewal must end before the lease does."""
        box: list = []
        worker = threading.Thread(
            target=lambda: box.append(self._call(method, path, body,
                                                 timeout)),
            name="lockservice-call", daemon=True)
        worker.start()
        end = time.monotonic() + timeout
        while worker.is_alive() and not stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            worker.join(min(left, 0.05))
        if box:
            return box[0]
        return _Answer(_TRANSIENT, 0, None, "",
                       "stopped" if stop.is_set()
                       else f"no answer within {timeout:.1f}s")

    def _acquire_call(self, path: str, body: dict, wait: float) -> _Answer:
        """POST an acquire with a fresh request_id, tried again with the
        same one after a transient failure (bounded, with backoff, within
        wait plus slack), each try asking to wait only what is left."""
        body = dict(body, request_id="py-" + secrets.token_hex(16))
        start = time.monotonic()
        wait_end = start + wait
        deadline = wait_end + _ANSWER_SLACK
        backoff = _ACQUIRE_FIRST_BACKOFF
        attempt = 0
        while True:
            attempt += 1
            now = time.monotonic()
            left = max(wait_end - now, 0.0)
            body["wait_ms"] = int(left * 1000)
            ans = self._call("POST", path, body,
                             max(deadline - now, left + 1.0))
            now = time.monotonic()
            if (ans.kind != _TRANSIENT or attempt >= _ACQUIRE_ATTEMPTS
                    or now + backoff >= deadline):
                return ans
            log.warning("acquire %s: %s; trying again with the same "
                        "request_id", path, ans.text)
            time.sleep(backoff)
            backoff = min(backoff * 2, _ACQUIRE_MAX_BACKOFF)

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"bad lock name {name!r}: 1 to 128 characters "
                             f"of A-Z a-z 0-9 . _ : -")

    def lock(self, name: str, *, ttl: float = 30.0, wait: float = 0.0,
             owner: Optional[str] = None,
             on_lost: Optional[Callable[["Lease"], None]] = None,
             shared: bool = False) -> "Lease":
        """A lease on ``name``, acquired when the ``with`` block starts
        (or by :meth:`Lease.acquire`). ``ttl`` and ``wait`` are seconds;
        ``wait`` > 0 waits on the server (no polling) while the lock is
        held, up to the service's ``--max-wait-ms`` (default 60 s).
        ``owner`` is the label status shows (default "python@HOST pid
        N"). ``shared=True`` asks for a shared (read) lease: shared leases
        of a name are held at once, an exclusive one (the default) waits
        for them all."""
        self._check_name(name)
        if owner is None:
            owner = f"python@{socket.gethostname()} pid {os.getpid()}"[:128]
        if ttl < 0.3:
            raise ValueError("ttl must be at least 0.3 s (renewals go out "
                             "every ttl/3)")
        if wait < 0:
            raise ValueError("wait must not be negative")
        return Lease(self, name, ttl, wait, owner, on_lost, shared=shared)

    def acquire(self, name: str, *, ttl: float = 30.0, wait: float = 0.0,
                owner: Optional[str] = None,
                on_lost: Optional[Callable[["Lease"], None]] = None,
                shared: bool = False) -> "Lease":
        """Like :meth:`lock`, acquired now: raises :class:`NotAcquired`
        when the lock was still held after ``wait``, :class:`Unavailable`
        when the service could not answer. Release it with
        :meth:`Lease.release`."""
        return self.lock(name, ttl=ttl, wait=wait, owner=owner,
                         on_lost=on_lost, shared=shared).acquire()

    def semaphore(self, name: str, limit: int, *, permits: int = 1,
                  ttl: float = 30.0, wait: float = 0.0,
                  owner: Optional[str] = None,
                  on_lost: Optional[Callable[["Lease"], None]] = None
                  ) -> "Semaphore":
        """A lease of ``permits`` of the semaphore ``name`` (at most
        ``limit`` permits held at once; everyone must give the same
        ``limit``), acquired when the ``with`` block starts (or by
        :meth:`Lease.acquire`), renewed and lost like a lock's lease. Not
        enough permits free after ``wait``: :class:`NotAcquired` with code
        ``no_permits``."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a whole number of at least 1")
        if not isinstance(permits, int) or not 1 <= permits <= limit:
            raise ValueError("permits must be a whole number from 1 to "
                             "limit")
        lease = self.lock(name, ttl=ttl, wait=wait, owner=owner,
                          on_lost=on_lost)
        return Semaphore(self, name, lease.ttl, lease.wait, lease.owner,
                         on_lost, limit, permits)

    def semaphore_status(self, name: str) -> Dict[str, Any]:
        """The semaphore's state, as ``GET /v1/semaphores/{name}`` answers
        it."""
        self._check_name(name)
        ans = self._call("GET", f"/v1/semaphores/{name}", None, self.timeout)
        if ans.kind != _OK:
            raise ans.error(f"status {name!r}")
        return ans.body or {}

    def status(self, name: str) -> Dict[str, Any]:
        """The lock's state, as ``GET /v1/locks/{name}`` answers it."""
        self._check_name(name)
        ans = self._call("GET", f"/v1/locks/{name}", None, self.timeout)
        if ans.kind != _OK:
            raise ans.error(f"status {name!r}")
        return ans.body or {}

    def list(self, prefix: str = "", *, limit: int = 100,
             semaphores: bool = False) -> Iterator[Dict[str, Any]]:
        """Every held or queued lock whose name starts with ``prefix``
        (with ``semaphores=True``: every semaphore with permits held or
        waiters), each as its status shows it without ``queue``, page by
        page (``GET /v1/locks``, up to ``limit`` names a page, 1..1000)
        until the listing ends. A name held throughout is yielded exactly
        once. Raises :class:`Unavailable` or :class:`LockServiceError` when
        a page fails."""
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ValueError(f"bad prefix {prefix!r}: 0 to 128 characters "
                             f"of A-Z a-z 0-9 . _ : -")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError("limit must be a whole number from 1 to 1000")
        member = "semaphores" if semaphores else "locks"
        cursor = None
        while True:
            query = {"prefix": prefix, "limit": str(limit)}
            if cursor is not None:
                query["cursor"] = cursor
            path = f"/v1/{member}?{urllib.parse.urlencode(query)}"
            ans = self._call("GET", path, None, self.timeout)
            if ans.kind != _OK:
                raise ans.error(f"list {member}")
            page = ans.body or {}
            items = page.get(member)
            cursor = page.get("next_cursor")
            if not isinstance(items, list) or not (
                    cursor is None or (isinstance(cursor, str) and cursor)):
                raise Unavailable(f"list {member}: not a listing page",
                                  ans.status)
            yield from items
            if cursor is None:
                return


class Lease:
    """A lease on one lock, renewed in the background while held.

    ``token`` and ``fence`` are set once acquired; ``lost`` is an Event set
    when the lease is lost; ``lost_reason`` says why; ``released`` holds
    the :class:`Released` of the release."""

    def __init__(self, client: Client, name: str, ttl: float, wait: float,
                 owner: str, on_lost: Optional[Callable[["Lease"], None]],
                 shared: bool = False):
        self.client = client
        self.shared = shared
        self.name = name
        self.ttl = ttl
        self.wait = wait
        self.owner = owner
        self.on_lost = on_lost
        self.token: Optional[str] = None
        self.fence: Optional[int] = None
        self.lost = threading.Event()
        self.lost_reason: Optional[str] = None
        self.released: Optional[Released] = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._renewer: Optional[threading.Thread] = None
        self._basis = 0.0  # when the request that set the TTL was sent

    _kind = "locks"

    def _acquire_body(self) -> Dict[str, Any]:
        body: Dict[str, Any] = {"ttl_ms": int(self.ttl * 1000),
                                "wait_ms": int(self.wait * 1000),
                                "owner": self.owner}
        if self.shared:
            body["mode"] = "shared"
        return body

    # -- acquire

    def acquire(self) -> "Lease":
        if self.token is not None:
            raise RuntimeError(f"lease on {self.name!r} is already acquired")
        body = self._acquire_body()
        sent = time.monotonic()
        ans = self.client._acquire_call(f"/v1/{self._kind}/{self.name}/acquire",
                                        body, self.wait)
        b = ans.body or {}
        if (ans.kind != _OK or not isinstance(b.get("token"), str)
                or not isinstance(b.get("fence"), int)
                or not isinstance(b.get("ttl_ms"), int)):
            if ans.kind == _OK:
                ans.kind, ans.text = _TRANSIENT, "an answer without a lease"
            raise ans.error(f"acquire {self.name!r}")
        self.token, self.fence = b["token"], b["fence"]
        self.ttl = b["ttl_ms"] / 1000.0
        now = time.monotonic()
        if now - sent <= self.ttl / 10:
            self._basis, first = sent, sent + self.ttl / 3
        else:
            # It waited: the grant came at some moment of the wait. Renew
            # at once, which pins the TTL to a known start.
            self._basis, first = now, now
        self._renewer = threading.Thread(target=self._renew_loop,
                                         args=(first,), daemon=True,
                                         name=f"lockservice-renew-{self.name}")
        self._renewer.start()
        return self

    def __enter__(self) -> "Lease":
        if self.token is None:
            self.acquire()
        return self

    def __exit__(self, *exc: Any) -> bool:
        result = self.release()
        if not result.released:
            log.warning("release of lock %r: %s%s", self.name, result.code,
                        f" ({result.detail})" if result.detail else "")
        return False

    # -- renewal

    def _deadline(self) -> float:
        return self._basis + self.ttl - self.ttl / 10

    def _renew_loop(self, next_try: float) -> None:
        backoff, failures = _FIRST_BACKOFF, 0
        path = f"/v1/{self._kind}/{self.name}/renew"
        while not self._stop.is_set():
            now = time.monotonic()
            deadline = self._deadline()
            if now >= deadline:
                self._lose(f"no renewal succeeded in time ({failures} "
                           f"attempts failed; the TTL is {self.ttl:g}s)")
                return
            if now < next_try:
                self._stop.wait(min(next_try, deadline) - now)
                continue
            timeout = min(max(self.ttl / 3, 1.0), deadline - now)
            ans = self.client._call_within("POST", path,
                                           {"token": self.token}, timeout,
                                           self._stop)
            if self._stop.is_set():
                return
            ttl_ms = (ans.body or {}).get("ttl_ms")
            if ans.kind == _OK and isinstance(ttl_ms, int) and ttl_ms > 0:
                if failures:
                    log.warning("renewed lock %r after %d failed attempts",
                                self.name, failures)
                self.ttl = ttl_ms / 1000.0
                self._basis = now
                next_try = now + self.ttl / 3
                backoff, failures = _FIRST_BACKOFF, 0
            elif ans.kind == _PROBLEM:
                self._lose(f"the renewal was refused ({ans.text})")
                return
            else:
                failures += 1
                delay = backoff * random.uniform(0.75, 1.25)
                next_try = time.monotonic() + delay
                backoff = min(backoff * 2, max(self.ttl / 10, _FIRST_BACKOFF))
                log.warning("renewing lock %r failed (%s); trying again in "
                            "%.0f ms (%.0f ms before the lease counts as "
                            "lost)", self.name, ans.text or "no answer",
                            delay * 1000,
                            (self._deadline() - time.monotonic()) * 1000)

    def _lose(self, why: str) -> None:
        with self._mutex:
            if self.lost.is_set():
                return
            self.lost_reason = why
            self.lost.set()
        log.error("lease on lock %r lost: %s; stop working under it",
                  self.name, why)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:  # noqa: BLE001 -- the renewer must go on
                log.exception("on_lost callback of lock %r failed",
                              self.name)

    def raise_if_lost(self) -> None:
        """Raises :class:`LeaseLost` once the lease is lost."""
        if self.lost.is_set():
            raise LeaseLost(f"lease on lock {self.name!r} lost: "
                            f"{self.lost_reason}")

    # -- release

    def release(self) -> Released:
        """Stops renewing and releases the lease (transient failures are
        retried for up to 10 s, within the lease's life). Never raises;
        a second call returns the first one's result."""
        with self._mutex:
            if self.released is not None:
                return self.released
            if self.token is None:
                self.released = Released(False, None, "not_acquired",
                                         "the lease was never acquired")
                return self.released
            self._stop.set()
        if self._renewer is not None and \
                self._renewer is not threading.current_thread():
            self._renewer.join()
        result = self._release()
        with self._mutex:
            self.released = result
        return result

    def _release(self) -> Released:
        path = f"/v1/{self._kind}/{self.name}/release"
        until = min(self._deadline(), time.monotonic() + _RELEASE_BUDGET)
        backoff, uncertain = _FIRST_BACKOFF, False
        never = threading.Event()
        while True:
            timeout = max(min(until - time.monotonic(), 5.0), 0.5)
            ans = self.client._call_within("POST", path,
                                           {"token": self.token}, timeout,
                                           never)
            body = ans.body or {}
            if ans.kind == _OK:
                return Released(True, body.get("count", 0))
            if ans.kind == _PROBLEM:
                if ans.code == "not_held" and uncertain:
                    return Released(True, 0)  # an earlier attempt counted
                return Released(False, None, ans.code,
                                str(body.get("detail", ans.text)))
            if time.monotonic() + backoff >= until:
                return Released(False, None, "unavailable", ans.text)
            uncertain = uncertain or not ans.unsent
            time.sleep(backoff)
            backoff *= 2

    def __repr__(self) -> str:
        state = ("released" if self.released else "lost" if self.lost.is_set()
                 else "held" if self.token else "not acquired")
        return f"<Lease {self.name!r} fence={self.fence} {state}>"


class Semaphore(Lease):
    """A lease of ``permits`` of a semaphore of ``limit`` permits
    (``/v1/semaphores``), renewed in the background and lost, released and
    fenced like a lock's :class:`Lease`; see :meth:`Client.semaphore`."""

    _kind = "semaphores"

    def __init__(self, client: Client, name: str, ttl: float, wait: float,
                 owner: str, on_lost: Optional[Callable[["Lease"], None]],
                 limit: int, permits: int):
        super().__init__(client, name, ttl, wait, owner, on_lost)
        self.limit = limit
        self.permits = permits

    def _acquire_body(self) -> Dict[str, Any]:
        return dict(super()._acquire_body(), limit=self.limit,
                    permits=self.permits)

    def __repr__(self) -> str:
        return (super().__repr__().replace("<Lease", "<Semaphore", 1)
                [:-1] + f" {self.permits}/{self.limit}>")
