"""Tests of the Python client against a real lockservice and redis-server
(started here on free ports; see fixture.py). Time bounds are generous:
they check that things happen, not how fast.

Run: python3 -m unittest discover -s clients/python/tests (from the
repository root, after `make lockservice`), or tests/clients/run python.
"""

import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import lockservice  # noqa: E402
from fixture import ROOT, Proxy, Redis, Service, wait_until  # noqa: E402

SCALE = float(os.environ.get("LOCKSERVICE_TEST_TIME_SCALE") or 1)
redis = service = None


def setUpModule():
    global redis, service
    logging.getLogger("lockservice").setLevel(logging.CRITICAL)
    redis = Redis()
    service = Service(redis)


def tearDownModule():
    service.close()
    redis.close()


class LockTest(unittest.TestCase):
    def setUp(self):
        self.client = lockservice.Client(service.url)

    def test_happy_path(self):
        with self.client.lock("py-happy", ttl=1.2, wait=1,
                              owner="py-test") as lease:
            self.assertRegex(lease.token, r"^[0-9a-f]{32}$")
            self.assertGreater(lease.fence, 0)
            time.sleep(2.0)  # past the TTL: the renewals keep it
            status = self.client.status("py-happy")
            self.assertTrue(status["held"])
            self.assertEqual(status["owner"], "py-test")
            self.assertEqual(status["fence"], lease.fence)
            self.assertFalse(lease.lost.is_set())
        self.assertEqual(lease.released, lockservice.Released(True, 0))
        self.assertFalse(self.client.status("py-happy")["held"])

    def test_fence_grows(self):
        fences = []
        for _ in range(3):
            with self.client.lock("py-fence") as lease:
                fences.append(lease.fence)
        self.assertEqual(fences, sorted(set(fences)))

    def test_shared_leases_coexist(self):
        readers = [self.client.acquire("py-shared", ttl=10, shared=True)
                   for _ in range(2)]
        try:
            status = self.client.status("py-shared")
            self.assertEqual(status["mode"], "shared")
            self.assertEqual(status["holder_count"], 2)
            self.assertEqual([h["mode"] for h in status["holders"]],
                             ["shared", "shared"])
            self.assertNotEqual(readers[0].token, readers[1].token)
            with self.assertRaises(lockservice.NotAcquired) as caught:
                with self.client.lock("py-shared"):
                    self.fail("an exclusive lease beside shared ones")
            self.assertEqual(caught.exception.code, "lock_held")
        finally:
            for r in readers:
                self.assertTrue(r.release().released)
        with self.client.lock("py-shared", wait=1) as writer:
            self.assertGreater(writer.fence, readers[1].fence)

    def test_wait_runs_out(self):
        holder = self.client.acquire("py-held", ttl=10)
        try:
            start = time.monotonic()
            with self.assertRaises(lockservice.NotAcquired) as caught:
                with self.client.lock("py-held", wait=0.3):
                    self.fail("the body ran without the lock")
            self.assertGreaterEqual(time.monotonic() - start, 0.25)
            self.assertEqual(caught.exception.code, "lock_held")
            self.assertGreater(caught.exception.retry_after, 0)
        finally:
            self.assertTrue(holder.release().released)

    def test_two_holders_never_overlap(self):
        inside, most, entries = [0], [0], []
        mutex = threading.Lock()
        errors = []

        def worker():
            try:
                with self.client.lock("py-mutex", ttl=2, wait=20) as lease:
                    with mutex:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                        entries.append(lease.fence)
                    time.sleep(0.3)
                    with mutex:
                        inside[0] -= 1
            except Exception as err:  # noqa: BLE001
                errors.append(err)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SCALE)
        self.assertEqual(errors, [])
        self.assertEqual(len(entries), 4)
        self.assertEqual(most[0], 1, "two holders at once")
        self.assertEqual(entries, sorted(set(entries)), "fences grow")

    def test_semaphore_never_more_than_limit(self):
        inside, most, errors = [0], [0], []
        mutex = threading.Lock()

        def worker():
            try:
                with self.client.semaphore("py-sem", 2, ttl=1.2,
                                           wait=20) as sem:
                    with mutex:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    time.sleep(1.5)  # past the TTL: renewals keep it
                    self.assertFalse(sem.lost.is_set(), sem.lost_reason)
                    with mutex:
                        inside[0] -= 1
                self.assertTrue(sem.released.released)
            except Exception as err:  # noqa: BLE001
                errors.append(err)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SCALE)
        self.assertEqual(errors, [])
        self.assertEqual(most[0], 2, "at most 2 of 3 at once, and 2 did")
        status = self.client.semaphore_status("py-sem")
        self.assertEqual(status["used"], 0)

    def test_semaphore_no_permits(self):
        held = self.client.semaphore("py-sem-full", 3, permits=2, ttl=10)
        with held:
            self.assertEqual(held.permits, 2)
            status = self.client.semaphore_status("py-sem-full")
            self.assertEqual(status["used"], 2)
            self.assertEqual(status["fence"] if "fence" in status
                             else status["holders"][0]["fence"], held.fence)
            with self.assertRaises(lockservice.NotAcquired) as caught:
                with self.client.semaphore("py-sem-full", 3, permits=2):
                    self.fail("ran without permits")
            self.assertEqual(caught.exception.code, "no_permits")
        self.assertTrue(held.released.released)
        with self.assertRaises(ValueError):
            self.client.semaphore("py-sem-full", 2, permits=3)

    def test_html_502_keeps_the_lease(self):
        proxy = Proxy(service.port)
        try:
            client = lockservice.Client(proxy.url)
            with client.lock("py-502", ttl=1.2) as lease:
                time.sleep(2.5)
                self.assertFalse(lease.lost.is_set(), lease.lost_reason)
            self.assertTrue(lease.released.released)
            self.assertEqual(proxy.bad_gateway, 1)
            self.assertGreaterEqual(proxy.renewals, 3)
        finally:
            proxy.close()

    def test_acquire_retried_after_cut_answer(self):
        proxy = Proxy(service.port, cut_first_acquire=True)
        try:
            client = lockservice.Client(proxy.url)
            with client.lock("py-retry-acquire", ttl=10) as lease:
                status = self.client.status("py-retry-acquire")
                self.assertEqual(status["holder_count"], 1)
                self.assertEqual(status["fence"], lease.fence)
            self.assertTrue(lease.released.released)
            self.assertEqual(proxy.acquires, 2)
            self.assertRegex(proxy.request_ids[0] or "", r"^py-[0-9a-f]{32}$")
            self.assertEqual(proxy.request_ids[0], proxy.request_ids[1])
            self.assertFalse(self.client.status("py-retry-acquire")["held"])
        finally:
            proxy.close()

    def test_service_restart_keeps_the_lease(self):
        own = Service(redis)
        try:
            client = lockservice.Client(own.url)
            with client.lock("py-restart", ttl=3) as lease:
                time.sleep(1.2)  # past the first renewal
                own.stop()
                time.sleep(0.3)
                own.start()
                time.sleep(2.5)  # renewals retried, then through again
                self.assertFalse(lease.lost.is_set(), lease.lost_reason)
            self.assertTrue(lease.released.released)
        finally:
            own.close()

    def test_lock_deleted_is_lost_at_once(self):
        lost = threading.Event()
        released = []

        def on_lost(lease):  # releasing from the callback must not hang
            released.append(lease.release())
            lost.set()

        with self.client.lock("py-gone", ttl=1.5, on_lost=on_lost) as lease:
            subprocess.run(["redis-cli", "-p", str(redis.port), "DEL",
                            "lockservice:{py-gone}:lock"],
                           stdout=subprocess.DEVNULL, check=True)
            self.assertTrue(lost.wait(3 * SCALE))
            self.assertIn("not_held", lease.lost_reason)
            with self.assertRaises(lockservice.LeaseLost):
                lease.raise_if_lost()
        self.assertEqual(lease.released.code, "not_held")
        self.assertEqual(released, [lease.released])

    def test_semaphore_force_released_is_lost(self):
        import urllib.request
        with self.client.semaphore("py-sem-gone", 2, ttl=1.5) as sem:
            req = urllib.request.Request(
                f"{service.url}/v1/semaphores/py-sem-gone", method="DELETE")
            with urllib.request.urlopen(req, timeout=5) as resp:
                self.assertEqual(resp.status, 200)
            self.assertTrue(sem.lost.wait(3 * SCALE))
            self.assertIn("not_held", sem.lost_reason)
        self.assertEqual(sem.released.code, "not_held")

    def test_redis_down_fires_lost_before_expiry(self):
        called = []
        ttl = 1.5
        try:
            with self.client.lock("py-down", ttl=ttl,
                                  on_lost=called.append) as lease:
                time.sleep(0.6)  # one renewal through
                stopped = time.monotonic()
                redis.kill()
                self.assertTrue(lease.lost.wait(5 * SCALE))
                lost_at = time.monotonic()
                # The last renewal reached Redis before it was stopped, so
                # the lease expired at most ttl after that.
                self.assertLess(lost_at, stopped + ttl)
                self.assertEqual(called, [lease])
                redis.start()
                self.assertTrue(service.ready())
            # Redis came back empty: the release finds nothing, and says
            # so without raising out of the with block.
            self.assertEqual(lease.released.released, False)
            self.assertEqual(lease.released.code, "not_held")
            self.assertEqual(lease.release(), lease.released)
        finally:
            if redis.proc is None:
                redis.start()
            service.ready()

    def test_list(self):
        leases = [self.client.acquire(f"py-list-{i:02d}", ttl=30)
                  for i in range(25)]
        sem = self.client.semaphore("py-list-sem", 3, permits=2, ttl=30)
        sem.acquire()
        gone = self.client.acquire("py-list-gone", ttl=30)
        gone.release()
        try:
            names = [e["name"] for e in self.client.list("py-list-",
                                                         limit=2)]
            self.assertEqual(sorted(names),
                             [f"py-list-{i:02d}" for i in range(25)])
            first = next(iter(self.client.list("py-list-00")))
            self.assertTrue(first["held"])
            self.assertNotIn("queue", first)
            self.assertNotIn("token", first)
            sems = list(self.client.list("py-list-", semaphores=True))
            self.assertEqual([(e["name"], e["limit"], e["used"])
                              for e in sems], [("py-list-sem", 3, 2)])
            self.assertEqual(list(self.client.list("py-nobody-")), [])
        finally:
            for lease in leases:
                lease.release()
            sem.release()
        self.assertEqual(list(self.client.list("py-list-")), [])
        with self.assertRaises(ValueError):
            next(self.client.list("bad/prefix"))
        with self.assertRaises(ValueError):
            next(self.client.list(limit=1001))

    def test_unavailable(self):
        from fixture import free_port

        client = lockservice.Client(f"http://127.0.0.1:{free_port()}")
        with self.assertRaises(lockservice.Unavailable):
            client.acquire("py-nowhere")
        with self.assertRaises(lockservice.Unavailable):
            next(client.list())

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            self.client.lock("bad name")
        with self.assertRaises(ValueError):
            self.client.lock("x", ttl=0.1)
        with self.assertRaises(ValueError):
            lockservice.Client("ftp://example")

    def test_api_key_file(self):
        keys = tempfile.NamedTemporaryFile("w", delete=False)
        keys.write("python-test-key-0123456789abcdef py\n")
        keys.close()
        key = tempfile.NamedTemporaryFile("w", delete=False)
        key.write("python-test-key-0123456789abcdef\n")
        key.close()
        own = Service(redis, ["--api-keys-file", keys.name])
        try:
            with self.assertRaises(lockservice.LockServiceError) as caught:
                lockservice.Client(own.url).status("py-key")
            self.assertEqual(caught.exception.code, "unauthorized")
            client = lockservice.Client(own.url, api_key_file=key.name)
            with client.lock("py-key") as lease:
                self.assertGreater(lease.fence, 0)
            self.assertTrue(lease.released.released)
        finally:
            own.close()
            os.unlink(keys.name)
            os.unlink(key.name)


def readme_block(heading, lang):
    """The first ```lang block after the line heading in README.md."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    start = lines.index(heading)
    opening = next(i for i in range(start, len(lines))
                   if lines[i].startswith("```" + lang))
    end = next(i for i in range(opening + 1, len(lines))
               if lines[i].startswith("```"))
    return "\n".join(lines[opening + 1:end]) + "\n"


class ReadmeRecipeTest(unittest.TestCase):
    """README's hand-written recipes ("By hand"): a proxy's HTML 502 on a
    renewal does not stop them, a 409 does stop the work."""

    def run_recipe(self, heading, lang, argv, url, on_start=None):
        text = readme_block(heading, lang).replace("http://localhost:8080",
                                                   url)
        with tempfile.NamedTemporaryFile("w", suffix="." + lang,
                                         delete=False) as f:
            f.write(text)
        try:
            proc = subprocess.Popen(argv + [f.name], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            out, start = [], time.monotonic()
            for line in proc.stdout:
                out.append(line)
                if on_start and ("holding" in line or '"fence"' in line):
                    on_start()
                    on_start = None
            proc.wait(60)
            proc.stdout.close()
            return proc.returncode, "".join(out), time.monotonic() - start
        finally:
            os.unlink(f.name)

    def delete(self):
        time.sleep(0.5)
        subprocess.run(["redis-cli", "-p", str(redis.port), "DEL",
                        "lockservice:{orders}:lock"],
                       stdout=subprocess.DEVNULL, check=True)

    def test_python_recipe_survives_502(self):
        proxy = Proxy(service.port)
        try:
            rc, out, _ = self.run_recipe("### Python (standard library only)",
                                         "python", [sys.executable, "-u"],
                                         proxy.url)
        finally:
            proxy.close()
        self.assertEqual(rc, 0, out)
        self.assertIn("step 3 - write it with fence", out)
        self.assertNotIn("release:", out)
        self.assertEqual(proxy.bad_gateway, 1)

    def test_python_recipe_stops_on_409(self):
        rc, out, _ = self.run_recipe("### Python (standard library only)",
                                     "python", [sys.executable, "-u"],
                                     service.url, self.delete)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("lost the lock; stopping", out)
        self.assertNotIn("step 3", out)

    def test_curl_recipe_survives_502(self):
        proxy = Proxy(service.port)
        try:
            rc, out, _ = self.run_recipe("### curl", "sh", ["sh"], proxy.url)
        finally:
            proxy.close()
        self.assertEqual(rc, 0, out)
        self.assertIn("renew failed (502); retrying", out)
        self.assertIn('{"name":"orders","released":true,"count":0}', out)
        self.assertNotIn("lease lost", out)

    def test_curl_recipe_stops_on_409(self):
        rc, out, took = self.run_recipe("### curl", "sh", ["sh"],
                                        service.url, self.delete)
        self.assertIn("lease lost (409): stopping the work", out)
        self.assertLess(took, 5.0 * SCALE + 1, "the work was not stopped")


class PackagingTest(unittest.TestCase):
    def test_pip_install_offline(self):
        here = os.path.join(os.path.dirname(__file__), "..")
        probe = subprocess.run([sys.executable, "-m", "pip", "--version"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("pip is not installed")
        with tempfile.TemporaryDirectory() as target:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-index",
                 "--no-deps", "--disable-pip-version-check", "--quiet",
                 "--target", target, here],
                capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            where = subprocess.run(
                [sys.executable, "-c",
                 "import lockservice; print(lockservice.__file__)"],
                capture_output=True, text=True, cwd=target,
                env=dict(os.environ, PYTHONPATH=target))
            self.assertTrue(where.stdout.startswith(target), where.stderr)
            self.assertTrue(re.search(r"lockservice_client-[0-9.]+"
                                      r"\.dist-info",
                                      " ".join(os.listdir(target))))


if __name__ == "__main__":
    unittest.main()
