// Tests of the TypeScript client (compiled) against a real lockservice and
// redis-server, started on free ports by fixture.mjs. Time bounds are
// generous: they check that things happen, not how fast.
// Run: tests/clients/run typescript (compiles with tsc first), or
// LOCKSERVICE_TS_DIST=path/to/dist node --test test/lockservice.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";
import { Redis, Service, Proxy, sleep, waitUntil, freePort } from "./fixture.mjs";

const dist = process.env.LOCKSERVICE_TS_DIST ||
  path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist");
const ls = await import(pathToFileURL(path.join(dist, "index.js")).href);
const { LockClient, NotAcquiredError, UnavailableError, LeaseLostError, LockServiceError } = ls;

let redis, service;
const quiet = () => {};

before(async () => {
  redis = await Redis.start();
  service = await Service.start(redis);
});

after(async () => {
  await service?.close();
  await redis?.close();
});

test("happy path: acquire, renewals past the TTL, release", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const lock = await client.acquire("ts-happy", { ttlMs: 1200, waitMs: 1000, owner: "ts-test" });
  try {
    assert.match(lock.token, /^[0-9a-f]{32}$/);
    assert.ok(lock.fence > 0);
    await sleep(2000);
    const st = await client.status("ts-happy");
    assert.equal(st.held, true);
    assert.equal(st.owner, "ts-test");
    assert.equal(st.fence, lock.fence);
    assert.equal(lock.lost, false);
    assert.equal(lock.signal.aborted, false);
  } finally {
    assert.deepEqual(await lock.release(), { released: true, count: 0 });
  }
  assert.equal((await client.status("ts-happy")).held, false);
});

test("fences grow; withLock releases", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const fences = [];
  for (let i = 0; i < 3; i++) {
    fences.push(await client.withLock("ts-fence", {}, async (lock) => lock.fence));
  }
  assert.ok(fences[0] < fences[1] && fences[1] < fences[2], String(fences));
  assert.equal((await client.status("ts-fence")).held, false);
});

test("shared leases coexist; an exclusive one waits for them", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const readers = [];
  for (let i = 0; i < 2; i++) readers.push(await client.acquire("ts-shared", { ttlMs: 10_000, shared: true }));
  try {
    assert.ok(readers.every((r) => r.mode === "shared"));
    assert.notEqual(readers[0].token, readers[1].token);
    const st = await client.status("ts-shared");
    assert.equal(st.mode, "shared");
    assert.equal(st.holder_count, 2);
    await assert.rejects(client.acquire("ts-shared", {}), (e) => e instanceof NotAcquiredError && e.code === "lock_held");
  } finally {
    for (const r of readers) assert.equal((await r.release()).released, true);
  }
  const writer = await client.acquire("ts-shared", { waitMs: 1000 });
  assert.equal(writer.mode, "exclusive");
  assert.ok(writer.fence > readers[1].fence);
  await writer.release();
  await assert.rejects(client.acquireSemaphore("ts-shared-sem", { limit: 2, shared: true }), TypeError);
});

test("the wait runs out: NotAcquiredError with retryAfterMs", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const holder = await client.acquire("ts-held", { ttlMs: 10000 });
  try {
    const start = Date.now();
    await assert.rejects(client.acquire("ts-held", { waitMs: 300 }), (err) => {
      assert.ok(err instanceof NotAcquiredError);
      assert.equal(err.code, "lock_held");
      assert.ok(err.retryAfterMs > 0);
      return true;
    });
    assert.ok(Date.now() - start >= 250);
  } finally {
    await holder.release();
  }
});

test("two holders never overlap", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  let inside = 0, most = 0;
  const fences = [];
  await Promise.all(
    [0, 1, 2, 3].map(() =>
      client.withLock("ts-mutex", { ttlMs: 2000, waitMs: 20000 }, async (lock) => {
        inside++;
        most = Math.max(most, inside);
        fences.push(lock.fence);
        await sleep(300);
        inside--;
      }),
    ),
  );
  assert.equal(most, 1);
  assert.equal(fences.length, 4);
  assert.deepEqual([...fences].sort((a, b) => a - b), fences);
});

test("a proxy's HTML 502 on one renewal keeps the lease", async () => {
  const proxy = await Proxy.start(service.port);
  try {
    const client = new LockClient({ url: proxy.url, log: quiet });
    const lock = await client.acquire("ts-502", { ttlMs: 1200 });
    await sleep(2500);
    assert.equal(lock.lost, false, lock.lostError?.message);
    assert.equal((await lock.release()).released, true);
    assert.equal(proxy.badGateway, 1);
    assert.ok(proxy.renewals >= 3, `${proxy.renewals} renewals`);
  } finally {
    await proxy.close();
  }
});

test("an acquire whose answer was cut off is retried with the same request_id: one lease", async () => {
  const proxy = await Proxy.start(service.port, { cutFirstAcquire: true });
  try {
    const client = new LockClient({ url: proxy.url, log: quiet });
    const lock = await client.acquire("ts-retry-acquire", { ttlMs: 10_000 });
    const status = await new LockClient({ url: service.url, log: quiet }).status("ts-retry-acquire");
    assert.equal(status.holder_count, 1);
    assert.equal(status.fence, lock.fence);
    assert.equal((await lock.release()).released, true);
    assert.equal(proxy.acquires, 2);
    assert.match(proxy.requestIds[0] ?? "", /^node-[0-9a-f]{32}$/);
    assert.equal(proxy.requestIds[0], proxy.requestIds[1]);
  } finally {
    await proxy.close();
  }
});

test("semaphore: 3 holders of limit 2 never exceed 2 at once, renewals keep them", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  let inside = 0;
  let most = 0;
  await Promise.all(
    [0, 1, 2].map(async () => {
      const sem = await client.acquireSemaphore("ts-sem", { limit: 2, ttlMs: 1200, waitMs: 20_000 });
      inside++;
      most = Math.max(most, inside);
      await sleep(1500); // past the TTL
      inside--;
      assert.equal(sem.lost, false, sem.lostError?.message);
      assert.equal((await sem.release()).released, true);
    }),
  );
  assert.equal(most, 2);
  assert.equal((await client.semaphoreStatus("ts-sem")).used, 0);
});

test("semaphore: no_permits, and a force release is a loss", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const sem = await client.acquireSemaphore("ts-sem-full", { limit: 3, permits: 2, ttlMs: 1500 });
  const status = await client.semaphoreStatus("ts-sem-full");
  assert.equal(status.used, 2);
  assert.equal(status.holders[0].fence, sem.fence);
  await assert.rejects(client.acquireSemaphore("ts-sem-full", { limit: 3, permits: 2 }), (err) => {
    assert.ok(err instanceof NotAcquiredError);
    assert.equal(err.code, "no_permits");
    return true;
  });
  const res = await fetch(`${service.url}/v1/semaphores/ts-sem-full`, { method: "DELETE" });
  assert.equal(res.status, 200);
  await res.text();
  assert.ok(await waitUntil(3000, () => sem.lost), "the lease was not lost");
  assert.equal((await sem.release()).code, "not_held");
});

test("a service restart mid-lease keeps the lease", async () => {
  const own = await Service.start(redis);
  try {
    const client = new LockClient({ url: own.url, log: quiet });
    const lock = await client.acquire("ts-restart", { ttlMs: 3000 });
    await sleep(1200);
    await own.stop();
    await sleep(300);
    await own.start();
    await sleep(2500);
    assert.equal(lock.lost, false, lock.lostError?.message);
    assert.equal((await lock.release()).released, true);
  } finally {
    await own.close();
  }
});

test("the lock deleted under the holder: lost at once (409 not_held)", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  let called = 0;
  const lock = await client.acquire("ts-gone", { ttlMs: 1500, onLost: () => called++ });
  redis.cli("DEL", "lockservice:{ts-gone}:lock");
  assert.ok(await waitUntil(3000, () => lock.signal.aborted));
  assert.ok(lock.signal.reason instanceof LeaseLostError);
  assert.match(lock.lostError.message, /not_held/);
  assert.equal(called, 1);
  assert.throws(() => lock.throwIfLost(), LeaseLostError);
  const released = await lock.release();
  assert.equal(released.released, false);
  assert.equal(released.code, "not_held");
});

test("Redis stopped past the TTL: lost fires before the lease's expiry", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const ttl = 1500;
  const lock = await client.acquire("ts-down", { ttlMs: ttl });
  try {
    await sleep(600); // one renewal through
    const stopped = performance.now();
    await redis.kill();
    const lostAt = await new Promise((resolve) => {
      if (lock.signal.aborted) resolve(performance.now());
      lock.signal.addEventListener("abort", () => resolve(performance.now()));
      setTimeout(() => resolve(Infinity), 5000);
    });
    // The last renewal reached Redis before it was stopped, so the lease
    // expired at most ttl after that.
    assert.ok(lostAt < stopped + ttl, `lost ${lostAt - stopped} ms after Redis stopped`);
    await redis.start();
    assert.ok(await service.ready());
    // Redis came back empty; a release in a finally block says not_held
    // and does not throw.
    const released = await lock.release();
    assert.deepEqual([released.released, released.code], [false, "not_held"]);
  } finally {
    if (!redis.proc) await redis.start();
    await service.ready();
  }
});

test("withLock rejects with the LeaseLostError when the lease was lost", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  await assert.rejects(
    client.withLock("ts-lost-with", { ttlMs: 1500 }, async (lock, signal) => {
      redis.cli("DEL", "lockservice:{ts-lost-with}:lock");
      await waitUntil(3000, () => signal.aborted);
      return "done";
    }),
    LeaseLostError,
  );
});

test("list: every held name once across pages, semaphores apart, released ones gone", async () => {
  const client = new LockClient({ url: service.url, log: quiet });
  const locks = [];
  for (let i = 0; i < 25; i++) locks.push(await client.acquire(`ts-list-${String(i).padStart(2, "0")}`, { ttlMs: 30_000 }));
  const sem = await client.acquireSemaphore("ts-list-sem", { limit: 3, permits: 2, ttlMs: 30_000 });
  const gone = await client.acquire("ts-list-gone");
  await gone.release();
  const names = [];
  for await (const e of client.list({ prefix: "ts-list-", limit: 2 })) {
    assert.equal(e.held, true);
    assert.equal("queue" in e, false);
    assert.equal("token" in e, false);
    assert.equal(e.waiting, 0);
    names.push(e.name);
  }
  assert.deepEqual(names.sort(), Array.from({ length: 25 }, (_, i) => `ts-list-${String(i).padStart(2, "0")}`));
  const sems = [];
  for await (const e of client.listSemaphores({ prefix: "ts-list-" })) sems.push([e.name, e.limit, e.used]);
  assert.deepEqual(sems, [["ts-list-sem", 3, 2]]);
  for (const l of locks) await l.release();
  await sem.release();
  const after = [];
  for await (const e of client.list({ prefix: "ts-list-" })) after.push(e.name);
  assert.deepEqual(after, []);
  await assert.rejects(client.list({ prefix: "bad/prefix" }).next(), TypeError);
  await assert.rejects(client.list({ limit: 1001 }).next(), TypeError);
  const far = new LockClient({ url: `http://127.0.0.1:${await freePort()}`, log: quiet });
  await assert.rejects(far.list().next(), UnavailableError);
});

test("unreachable service, bad arguments", async () => {
  const client = new LockClient({ url: `http://127.0.0.1:${await freePort()}`, log: quiet });
  await assert.rejects(client.acquire("ts-nowhere"), UnavailableError);
  await assert.rejects(client.acquire("bad name"), TypeError);
  await assert.rejects(client.acquire("x", { ttlMs: 100 }), TypeError);
  assert.throws(() => new LockClient({ url: "ftp://x" }), TypeError);
});

test("API key from a file", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "lockservice-tskey."));
  writeFileSync(path.join(dir, "keys"), "ts-test-key-0123456789abcdef ts\n");
  writeFileSync(path.join(dir, "key"), "ts-test-key-0123456789abcdef\n");
  const own = await Service.start(redis, ["--api-keys-file", path.join(dir, "keys")]);
  try {
    await assert.rejects(new LockClient({ url: own.url }).status("ts-key"), (err) => {
      assert.ok(err instanceof LockServiceError);
      assert.equal(err.code, "unauthorized");
      return true;
    });
    const client = new LockClient({ url: own.url, apiKeyFile: path.join(dir, "key"), log: quiet });
    const fence = await client.withLock("ts-key", {}, async (lock) => lock.fence);
    assert.ok(fence > 0);
  } finally {
    await own.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
