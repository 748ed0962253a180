// Compiled (not run) by tests/clients/run: the client used the ways its
// documentation shows, `await using` included, type-checks.
import { LockClient, NotAcquiredError, type Lease, type ListedLock, type LockStatus } from "../src/index.js";

export async function usage(): Promise<number> {
  const client = new LockClient({ url: "http://127.0.0.1:8080" });
  await using lock = await client.acquire("orders", { ttlMs: 30_000, waitMs: 10_000, owner: "usage" });
  const fence: number = lock.fence;
  const signal: AbortSignal = lock.signal;
  signal.throwIfAborted();
  const status: LockStatus = await client.status("orders");
  const held: boolean = status.held;
  const lease: Lease | undefined = undefined;
  try {
    await client.acquire("orders");
  } catch (err) {
    if (err instanceof NotAcquiredError) return err.retryAfterMs;
  }
  let waiting = 0;
  for await (const listed of client.list({ prefix: "orders", limit: 500 })) {
    const entry: ListedLock = listed;
    waiting += entry.waiting ?? 0;
  }
  for await (const sem of client.listSemaphores()) waiting += sem.waiting;
  const n = await client.withLock("orders", {}, async (l, s) => (s.aborted ? 0 : l.fence));
  return fence + n + waiting + (held ? 1 : 0) + (lease ? 1 : 0);
}
