/**
 * A client for lockservice: distributed locks over HTTP/JSON.
 * Node.js 18 or newer (built-in fetch); no runtime dependencies.
 *
 * A lock is a lease: acquired with a TTL (waiting on the server up to
 * `waitMs` while someone else holds it), renewed in the background every
 * ttl/3, and released at the end:
 *
 * ```ts
 * const client = new LockClient({ url: "http://127.0.0.1:8080" });
 * await using lock = await client.acquire("orders", { ttlMs: 30_000, waitMs: 10_000 });
 * await store.write(batch, { fence: lock.fence, signal: lock.signal });
 * ```
 *
 * (or `try { ... } finally { await lock.release(); }`, or
 * `client.withLock(name, options, async (lock, signal) => ...)`).
 *
 * A renewal that fails with a network error, a timeout, a 5xx or an answer
 * that is not JSON (a proxy's HTML error page) is retried with backoff
 * (100 ms doubling up to ttl/10, with jitter) until the lease would end.
 * The lease is lost when a renewal is refused (409 `not_held` /
 * `not_owner`, or any other 4xx), or when no renewal succeeded by
 * ttl - ttl/10 after the last one that did, which is before the service's
 * own expiry. Then `lock.signal` aborts (its reason a LeaseLostError),
 * `onLost` is called, and the loss is logged (console.error by default).
 *
 * Pass `lock.fence` with every write to what the lock protects, and have
 * that resource refuse a fence older than the last one it saw.
 *
 * An acquire carries a random `request_id` and is tried again with the
 * same one after a network error, a 5xx or an answer that is not JSON (up
 * to 5 attempts, backing off from 200 ms to 2 s, within `waitMs` plus
 * 10 s): the service answers a grant whose answer was lost again
 * (`"replayed": true`) instead of granting a second lease.
 *
 * `release()` never rejects: after a loss it resolves to
 * `{ released: false, code: "not_held", ... }`.
 */

export const DEFAULT_URL = "http://127.0.0.1:8080";

/* ------------------------------------------------- wire types (openapi.yaml) */

/** The `code` of a problem answer. */
export type ProblemCode =
  | "invalid_json"
  | "invalid_field"
  | "invalid_name"
  | "invalid_request"
  | "unauthorized"
  | "not_found"
  | "sku_not_found"
  | "method_not_allowed"
  | "lock_held"
  | "no_permits"
  | "limit_mismatch"
  | "not_owner"
  | "not_held"
  | "hold_limit"
  | "mode_conflict"
  | "sold_out"
  | "stale_fence"
  | "body_too_large"
  | "unsupported_media_type"
  | "too_many_waiters"
  | "internal_error"
  | "not_implemented"
  | "backend_unavailable"
  | "shutting_down";

/** An RFC 9457 problem with a code (components/schemas/Problem). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail: string;
  /** Only with `lock_held`: the holder's remaining TTL. */
  retry_after_ms?: number;
}

/** POST /v1/locks/{name}/acquire and /renew (components/schemas/Lease). */
export interface Lease {
  name: string;
  /** 32 lowercase hex digits, minted by the service. */
  token: string;
  /** Strictly increasing per lock name, below 2^53. */
  fence: number;
  ttl_ms: number;
  /** Holds of the lease (reentrancy). */
  count: number;
  owner: string;
  /** "exclusive" (the default) or "shared". */
  mode?: LockMode;
  /** true when a retried acquire (same `request_id`) was answered with
   * the lease the first try got. */
  replayed?: boolean;
}

/** A lock lease's mode: an exclusive lease excludes every other, shared
 * leases coexist. */
export type LockMode = "exclusive" | "shared";

/** POST /v1/semaphores/{name}/acquire and /renew. */
export interface SemaphoreLease {
  name: string;
  token: string;
  fence: number;
  ttl_ms: number;
  permits: number;
  limit: number;
  owner: string;
  replayed?: boolean;
}

/** GET /v1/semaphores/{name} (never a token). */
export interface SemaphoreStatus {
  name: string;
  limit: number;
  used: number;
  holders: { owner: string; fence: number; ttl_ms: number; permits: number; held_ms: number }[];
  holder_count: number;
  waiting: number;
  queue: { owner: string; mode: "semaphore"; permits: number; waited_ms: number }[];
}

/** POST /v1/locks/{name}/release (components/schemas/Released). */
export interface Released {
  name: string;
  released: true;
  /** Holds left; the lock is free at 0. */
  count: number;
}

/** GET /v1/locks/{name} (components/schemas/LockStatus). */
export type LockStatus =
  | { name: string; held: false; reserved_ms?: number }
  | {
      name: string;
      held: true;
      owner: string;
      /** The holder's (the first shared holder's, for a shared lock). */
      mode?: LockMode;
      fence: number;
      /** Remaining TTL. */
      ttl_ms: number;
      count: number;
      /** How many leases hold the lock. */
      holder_count?: number;
    };

/** One entry of GET /v1/locks: the lock's status without its queue. */
export type ListedLock = LockStatus & { /** Queue length. */ waiting?: number };

/** One entry of GET /v1/semaphores: the semaphore's status without its queue. */
export type ListedSemaphore = Omit<SemaphoreStatus, "queue">;

/** What a listing shows. */
export interface ListOptions {
  /** Only names starting with it (0 to 128 characters of A-Z a-z 0-9 . _ : -). */
  prefix?: string;
  /** Names per page asked for, 1..1000 (default the service's 100). */
  limit?: number;
}

export interface AcquireRequest {
  ttl_ms?: number;
  wait_ms?: number;
  owner?: string;
  token?: string;
  mode?: LockMode;
  /** 1-64 characters of A-Z a-z 0-9 . _ : -, one per attempt to take the
   * lock: a retry with the same one answers the same lease. */
  request_id?: string;
  /** Semaphores only. */
  limit?: number;
  permits?: number;
}

/* ------------------------------------------------------------------ errors */

/** A call that did not succeed. `status` 0: no answer came. */
export class LockServiceError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly problem?: Problem;

  constructor(message: string, status: number, code: string, detail: string, problem?: Problem) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.problem = problem;
  }
}

/** The lock was still held when the wait ran out (409 `lock_held`), or a
 * semaphore had too few permits free (409 `no_permits`). */
export class NotAcquiredError extends LockServiceError {
  /** The holder's remaining TTL. */
  get retryAfterMs(): number {
    return this.problem?.retry_after_ms ?? 0;
  }
}

/** The lease is gone: 409 `not_held` / `not_owner`, or it ran out. */
export class LeaseLostError extends LockServiceError {}

/** No usable answer: network error, timeout, 5xx, or a body that is not
 * JSON. Worth trying again later. */
export class UnavailableError extends LockServiceError {}

/* -------------------------------------------------------------------- HTTP */

type Kind = "ok" | "problem" | "transient";

/** The sorted outcome of one request (see LockClient.call). */
export interface Answer {
  kind: Kind;
  status: number;
  body?: Record<string, unknown>;
  code: string;
  text: string;
  /** It never reached the service: safe to repeat. */
  unsent: boolean;
}

function classify(status: number, contentType: string, raw: string): Answer {
  let body: unknown;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    body = undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return {
      kind: "transient",
      status,
      code: "",
      text: `HTTP ${status} with a ${contentType || "untyped"} body that is not JSON`,
      unsent: false,
    };
  }
  const obj = body as Record<string, unknown>;
  if (status >= 200 && status < 300) {
    return { kind: "ok", status, body: obj, code: "", text: `HTTP ${status}`, unsent: false };
  }
  const code = typeof obj.code === "string" ? obj.code : "";
  let text = `${status} ${code || "(no code)"}`;
  if (typeof obj.detail === "string") text += `: ${obj.detail}`;
  const refusal = status >= 400 && status < 500 && status !== 408 && status !== 429 && code !== "";
  return { kind: refusal ? "problem" : "transient", status, body: obj, code, text, unsent: false };
}

function toError(what: string, a: Answer): LockServiceError {
  const problem = a.kind === "problem" ? (a.body as unknown as Problem) : undefined;
  const detail = typeof a.body?.detail === "string" ? a.body.detail : a.text;
  const message = `${what}: ${a.text}`;
  if (a.kind === "transient") return new UnavailableError(message, a.status, a.code, detail, problem);
  if (a.code === "lock_held" || a.code === "no_permits") return new NotAcquiredError(message, a.status, a.code, detail, problem);
  if (a.code === "not_held" || a.code === "not_owner")
    return new LeaseLostError(message, a.status, a.code, detail, problem);
  return new LockServiceError(message, a.status, a.code, detail, problem);
}

const NAME = /^[A-Za-z0-9._:-]{1,128}$/;
const PREFIX = /^[A-Za-z0-9._:-]{0,128}$/;
const FIRST_BACKOFF_MS = 100;
const ANSWER_SLACK_MS = 10_000;
const ACQUIRE_ATTEMPTS = 5;
const ACQUIRE_FIRST_BACKOFF_MS = 200;
const ACQUIRE_MAX_BACKOFF_MS = 2_000;

/** A fresh random request_id: "node-" and 32 hex digits. */
function newRequestId(): string {
  const bytes = new Uint8Array(16);
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return "node-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
const RELEASE_BUDGET_MS = 10_000;
const MIN_TTL_MS = 300;

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

function checkName(name: string): void {
  if (!NAME.test(name)) {
    throw new TypeError(`bad lock name ${JSON.stringify(name)}: 1 to 128 characters of A-Z a-z 0-9 . _ : -`);
  }
}

/* ------------------------------------------------------------------ client */

export interface ClientOptions {
  /** Default: $LOCKSERVICE_URL, else http://127.0.0.1:8080. */
  url?: string;
  /** A file whose first line holds the API key alone (default:
   * $LOCKSERVICE_API_KEY_FILE). */
  apiKeyFile?: string;
  /** Bound of each call that does not wait for a lock (default 10 s). */
  timeoutMs?: number;
  /** Where renewal failures and losses are reported (default
   * console.error). */
  log?: (message: string) => void;
}

export interface SemaphoreOptions extends AcquireOptions {
  /** At most this many permits held at once; everyone using the
   * semaphore must give the same limit. */
  limit: number;
  /** Permits this lease takes (default 1, at most limit). */
  permits?: number;
}

export interface AcquireOptions {
  /** The lease's time to live (default 30 000, at least 300). */
  ttlMs?: number;
  /** Wait on the server up to this long while the lock is held (default
   * 0: answer at once; the service's --max-wait-ms, default 60 000, is the
   * most). */
  waitMs?: number;
  /** The label status shows (default "node@HOST pid N" where known). */
  owner?: string;
  /** true: a shared (read) lease; shared leases of a name are held at
   * once, an exclusive one (the default) waits for them all. Locks only. */
  shared?: boolean;
  /** Called once when the lease is lost, after `signal` aborted. */
  onLost?: (lock: Lock, error: LeaseLostError) => void;
  /** Gives up the acquire (not the lease once granted). */
  signal?: AbortSignal;
}

/** What a release found: `released`, with `count` holds left; otherwise
 * `code` says why not: `not_held` / `not_owner` (the lease had ended),
 * `unavailable` (no answer; the lease ends by itself when its TTL runs
 * out), or another problem code. */
export interface ReleaseResult {
  released: boolean;
  count?: number;
  code?: string;
  detail?: string;
}

export class LockClient {
  readonly url: string;
  readonly timeoutMs: number;
  readonly log: (message: string) => void;
  private readonly apiKeyFile?: string;
  private apiKey?: Promise<string | undefined>;

  constructor(options: ClientOptions = {}) {
    const url = options.url ?? env("LOCKSERVICE_URL") ?? DEFAULT_URL;
    if (!/^https?:\/\/[^/]+/.test(url)) throw new TypeError(`bad service URL ${JSON.stringify(url)}`);
    this.url = url.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.log = options.log ?? ((message) => console.error(message));
    this.apiKeyFile = options.apiKeyFile ?? env("LOCKSERVICE_API_KEY_FILE");
  }

  private key(): Promise<string | undefined> {
    if (this.apiKey === undefined) {
      const path = this.apiKeyFile;
      this.apiKey = path
        ? import("node:fs/promises").then(async (fs) => {
            const key = (await fs.readFile(path, "utf8")).split("\n")[0].replace(/\r$/, "");
            if (key === "" || /[\s\x00-\x1f]/.test(key)) {
              throw new TypeError(`API key file ${path}: the first line must hold the key alone`);
            }
            return key;
          })
        : Promise.resolve(undefined);
    }
    return this.apiKey;
  }

  /** One request; resolves to the sorted answer, never rejects (except
   * for an unreadable API key file). */
  async call(method: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<Answer> {
    const key = await this.key();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${timeoutMs} ms`)), Math.max(timeoutMs, 1));
    const onAbort = (): void => abort.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort);
    if (signal?.aborted) onAbort();
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers.Authorization = `Bearer ${key}`;
    try {
      const res = await fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal,
      });
      const raw = await res.text();
      return classify(res.status, res.headers.get("content-type") ?? "", raw);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = abort.signal.aborted
        ? String((abort.signal.reason as Error | undefined)?.message ?? "aborted")
        : cause?.message ?? String((err as Error).message ?? err);
      return {
        kind: "transient",
        status: 0,
        code: "",
        text: reason,
        unsent: cause?.code === "ECONNREFUSED" || cause?.code === "ENOTFOUND",
      };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** POSTs an acquire with a fresh request_id, tried again with the same
   * one after a transient failure (bounded, with backoff, within waitMs
   * plus slack), each try asking to wait only what is left. */
  private async acquireCall(path: string, request: AcquireRequest, waitMs: number, signal?: AbortSignal): Promise<Answer> {
    const body: AcquireRequest = { ...request, request_id: newRequestId() };
    const waitEnd = now() + waitMs;
    const deadline = waitEnd + ANSWER_SLACK_MS;
    let backoff = ACQUIRE_FIRST_BACKOFF_MS;
    for (let attempt = 1; ; attempt++) {
      const left = Math.max(Math.floor(waitEnd - now()), 0);
      body.wait_ms = left;
      const a = await this.call("POST", path, body, Math.max(deadline - now(), left + 1_000), signal);
      if (a.kind !== "transient" || attempt >= ACQUIRE_ATTEMPTS || signal?.aborted || now() + backoff >= deadline) {
        return a;
      }
      this.log(`lockservice: acquire ${path}: ${a.text}; trying again with the same request_id`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, ACQUIRE_MAX_BACKOFF_MS);
    }
  }

  /** Takes the lock. Rejects with NotAcquiredError when it was still held
   * after `waitMs`, UnavailableError when the service could not answer,
   * another LockServiceError when refused. */
  async acquire(name: string, options: AcquireOptions = {}): Promise<Lock> {
    const { lease, sent } = await this.acquireLease("locks", name, options, {});
    return new Lock(this, lease, sent, options.onLost);
  }

  /** Takes `permits` (default 1) of the semaphore `name` of `limit`
   * permits. Rejects with NotAcquiredError (code `no_permits`) when too few
   * were free after `waitMs`, otherwise as acquire. The Semaphore renews,
   * loses and releases like a Lock. */
  async acquireSemaphore(name: string, options: SemaphoreOptions): Promise<Semaphore> {
    const limit = options.limit;
    const permits = options.permits ?? 1;
    if (!Number.isInteger(limit) || limit < 1 || !Number.isInteger(permits) || permits < 1 || permits > limit) {
      throw new TypeError("limit must be an integer >= 1, permits an integer from 1 to limit");
    }
    const { lease, sent } = await this.acquireLease("semaphores", name, options, { limit, permits });
    return new Semaphore(this, lease as unknown as SemaphoreLease, sent, options.onLost);
  }

  /** The semaphore's state (never a token). */
  async semaphoreStatus(name: string): Promise<SemaphoreStatus> {
    checkName(name);
    const a = await this.call("GET", `/v1/semaphores/${name}`, undefined, this.timeoutMs);
    if (a.kind !== "ok") throw toError(`status ${JSON.stringify(name)}`, a);
    return a.body as unknown as SemaphoreStatus;
  }

  private async acquireLease(
    kind: LeaseKind,
    name: string,
    options: AcquireOptions,
    extra: Record<string, number>,
  ): Promise<{ lease: Lease; sent: number }> {
    checkName(name);
    const ttlMs = options.ttlMs ?? 30_000;
    const waitMs = options.waitMs ?? 0;
    if (!Number.isInteger(ttlMs) || ttlMs < MIN_TTL_MS) {
      throw new TypeError(`ttlMs must be an integer of at least ${MIN_TTL_MS} (renewals go out every ttl/3)`);
    }
    if (!Number.isInteger(waitMs) || waitMs < 0) throw new TypeError("waitMs must be an integer >= 0");
    const proc = (globalThis as { process?: { pid?: number } }).process;
    const owner = options.owner ?? (proc?.pid !== undefined ? `node pid ${proc.pid}` : "node");
    if (options.shared && kind !== "locks") throw new TypeError("shared is for a lock, not a semaphore");
    const request: AcquireRequest = { ttl_ms: ttlMs, wait_ms: waitMs, owner, ...extra };
    if (options.shared) request.mode = "shared";
    const sent = now();
    const a = await this.acquireCall(`/v1/${kind}/${name}/acquire`, request, waitMs, options.signal);
    const lease = a.body as Partial<Lease> | undefined;
    if (
      a.kind !== "ok" ||
      typeof lease?.token !== "string" ||
      typeof lease.fence !== "number" ||
      typeof lease.ttl_ms !== "number"
    ) {
      if (a.kind === "ok") {
        a.kind = "transient";
        a.text = "an answer without a lease";
      }
      throw toError(`acquire ${JSON.stringify(name)}`, a);
    }
    return { lease: lease as Lease, sent };
  }

  /** Acquires name, runs fn, releases. Resolves to fn's result; rejects
   * with fn's error, the acquire's, or the LeaseLostError if the lease was
   * lost while fn ran. */
  async withLock<T>(
    name: string,
    options: AcquireOptions,
    fn: (lock: Lock, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const lock = await this.acquire(name, options);
    let result: T;
    try {
      result = await fn(lock, lock.signal);
    } finally {
      await lock.release();
    }
    lock.throwIfLost();
    return result;
  }

  /** The lock's state (never a token). */
  async status(name: string): Promise<LockStatus> {
    checkName(name);
    const a = await this.call("GET", `/v1/locks/${name}`, undefined, this.timeoutMs);
    if (a.kind !== "ok") throw toError(`status ${JSON.stringify(name)}`, a);
    return a.body as unknown as LockStatus;
  }

  /**
   * Every held or queued lock whose name starts with `options.prefix`, each
   * as its status shows it without the queue, following the service's pages
   * to the end (GET /v1/locks). A name held throughout is yielded exactly
   * once. `for await (const lock of client.list({ prefix: "orders" }))`.
   */
  list(options: ListOptions = {}): AsyncGenerator<ListedLock> {
    return this.listPages<ListedLock>("locks", options);
  }

  /** list for the semaphores with permits held or waiters (GET /v1/semaphores). */
  listSemaphores(options: ListOptions = {}): AsyncGenerator<ListedSemaphore> {
    return this.listPages<ListedSemaphore>("semaphores", options);
  }

  private async *listPages<T>(member: string, options: ListOptions): AsyncGenerator<T> {
    const prefix = options.prefix ?? "";
    if (typeof prefix !== "string" || !PREFIX.test(prefix)) {
      throw new TypeError(`bad prefix ${JSON.stringify(prefix)}: 0 to 128 characters of A-Z a-z 0-9 . _ : -`);
    }
    const limit = options.limit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1000)) {
      throw new TypeError("limit must be a whole number from 1 to 1000");
    }
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ prefix });
      if (limit !== undefined) q.set("limit", String(limit));
      if (cursor !== null) q.set("cursor", cursor);
      const a = await this.call("GET", `/v1/${member}?${q.toString()}`, undefined, this.timeoutMs);
      if (a.kind !== "ok") throw toError(`list ${member}`, a);
      const items = a.body?.[member];
      const next = a.body?.next_cursor;
      if (!Array.isArray(items) || !(next === null || (typeof next === "string" && next !== ""))) {
        throw new UnavailableError(`list ${member}: not a listing page`, a.status, "", "");
      }
      for (const item of items) yield item as T;
      cursor = next as string | null;
    } while (cursor !== null);
  }
}

/* -------------------------------------------------------------------- lock */

const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

type LeaseKind = "locks" | "semaphores";

/** A held lease, renewed in the background until `release()`. */
export class Lock {
  readonly name: string;
  readonly token: string;
  readonly fence: number;
  readonly owner: string;
  /** The lease's mode ("exclusive" for a semaphore's lease too). */
  readonly mode: LockMode;
  /** Aborts when the lease is lost; its reason is the LeaseLostError. */
  readonly signal: AbortSignal;
  /** Why the lease was lost, once it is. */
  lostError?: LeaseLostError;

  private readonly client: LockClient;
  private readonly onLost?: (lock: Lock, error: LeaseLostError) => void;
  private readonly lostController = new AbortController();
  private ttl: number;
  private basis: number; // when the request that set the TTL was sent
  private renewTimer?: ReturnType<typeof setTimeout>;
  private deadlineTimer?: ReturnType<typeof setTimeout>;
  private inflight?: AbortController;
  private backoff = FIRST_BACKOFF_MS;
  private failures = 0;
  private stopped = false;
  private releasing?: Promise<ReleaseResult>;
  private readonly kind: LeaseKind;

  /** @internal Use LockClient.acquire. */
  constructor(
    client: LockClient,
    lease: Lease,
    sent: number,
    onLost?: (lock: Lock, error: LeaseLostError) => void,
    kind: LeaseKind = "locks",
  ) {
    this.client = client;
    this.kind = kind;
    this.name = lease.name;
    this.token = lease.token;
    this.fence = lease.fence;
    this.owner = lease.owner;
    this.mode = lease.mode ?? "exclusive";
    this.ttl = lease.ttl_ms;
    this.onLost = onLost;
    this.signal = this.lostController.signal;
    const t = now();
    if (t - sent <= this.ttl / 10) {
      this.basis = sent;
      this.armDeadline();
      this.scheduleRenewal(sent + this.ttl / 3);
    } else {
      // It waited: the grant came at some moment of the wait. Renew at
      // once, which pins the TTL to a known start.
      this.basis = t;
      this.armDeadline();
      this.scheduleRenewal(t);
    }
  }

  /** True once the lease is lost. */
  get lost(): boolean {
    return this.lostError !== undefined;
  }

  /** The TTL as last granted, in milliseconds. */
  get ttlMs(): number {
    return this.ttl;
  }

  /** Throws the LeaseLostError once the lease is lost. */
  throwIfLost(): void {
    if (this.lostError) throw this.lostError;
  }

  private deadline(): number {
    return this.basis + this.ttl - this.ttl / 10;
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(
      () =>
        this.lose(`no renewal succeeded in time (${this.failures} attempts failed; the TTL is ${this.ttl} ms)`),
      Math.max(this.deadline() - now(), 0),
    );
  }

  private scheduleRenewal(at: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), Math.max(at - now(), 0));
  }

  private async renew(): Promise<void> {
    if (this.stopped || this.lost) return;
    const sent = now();
    const timeout = Math.min(Math.max(this.ttl / 3, 1000), this.deadline() - sent);
    this.inflight = new AbortController();
    const a = await this.client.call(
      "POST",
      `/v1/${this.kind}/${this.name}/renew`,
      { token: this.token },
      timeout,
      this.inflight.signal,
    );
    this.inflight = undefined;
    if (this.stopped || this.lost) return;
    const ttl = a.body?.ttl_ms;
    if (a.kind === "ok" && typeof ttl === "number" && ttl > 0) {
      if (this.failures > 0) {
        this.client.log(`lockservice: renewed ${JSON.stringify(this.name)} after ${this.failures} failed attempts`);
      }
      this.ttl = ttl;
      this.basis = sent;
      this.backoff = FIRST_BACKOFF_MS;
      this.failures = 0;
      this.armDeadline();
      this.scheduleRenewal(sent + this.ttl / 3);
      return;
    }
    if (a.kind === "problem") {
      this.lose(`the renewal was refused (${a.text})`);
      return;
    }
    this.failures++;
    const delay = this.backoff * (0.75 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, Math.max(this.ttl / 10, FIRST_BACKOFF_MS));
    this.client.log(
      `lockservice: renewing ${JSON.stringify(this.name)} failed (${a.text || "no answer"}); trying again in ` +
        `${Math.round(delay)} ms (${Math.round(this.deadline() - now())} ms before the lease counts as lost)`,
    );
    this.scheduleRenewal(now() + delay);
  }

  private lose(reason: string): void {
    if (this.lost || this.stopped) return;
    const err = new LeaseLostError(
      `lease on ${JSON.stringify(this.name)} lost: ${reason}`,
      0,
      "lease_lost",
      reason,
    );
    this.lostError = err;
    clearTimeout(this.renewTimer);
    clearTimeout(this.deadlineTimer);
    this.inflight?.abort(err);
    this.lostController.abort(err);
    this.client.log(`lockservice: ${err.message}; stop working under it`);
    try {
      this.onLost?.(this, err);
    } catch (cbErr) {
      this.client.log(`lockservice: onLost of ${JSON.stringify(this.name)} threw: ${String(cbErr)}`);
    }
  }

  /** Stops renewing and releases the lease; transient failures are
   * retried for up to 10 s within the lease's life. Never rejects; a
   * second call resolves to the first one's result. */
  release(): Promise<ReleaseResult> {
    if (!this.releasing) {
      this.stopped = true;
      clearTimeout(this.renewTimer);
      clearTimeout(this.deadlineTimer);
      this.inflight?.abort(new Error("released"));
      this.releasing = this.doRelease().catch((err: unknown) => ({
        released: false,
        code: "unavailable",
        detail: String(err),
      }));
    }
    return this.releasing;
  }

  private async doRelease(): Promise<ReleaseResult> {
    const until = Math.min(this.deadline(), now() + RELEASE_BUDGET_MS);
    let backoff = FIRST_BACKOFF_MS;
    let uncertain = false;
    for (;;) {
      const timeout = Math.max(Math.min(until - now(), 5000), 500);
      const a = await this.client.call("POST", `/v1/${this.kind}/${this.name}/release`, { token: this.token }, timeout);
      if (a.kind === "ok") {
        return { released: true, count: (a.body as unknown as Released).count ?? 0 };
      }
      if (a.kind === "problem") {
        if (a.code === "not_held" && uncertain) return { released: true, count: 0 };
        return { released: false, code: a.code, detail: String(a.body?.detail ?? a.text) };
      }
      if (now() + backoff >= until) return { released: false, code: "unavailable", detail: a.text };
      uncertain = uncertain || !a.unsent;
      await sleep(backoff);
      backoff *= 2;
    }
  }

  /** `await using lock = await client.acquire(...)`: releases at the end
   * of the scope (never throws). */
  async [asyncDispose](): Promise<void> {
    const result = await this.release();
    if (!result.released) {
      this.client.log(`lockservice: release of ${JSON.stringify(this.name)}: ${result.code} (${result.detail ?? ""})`);
    }
  }
}

/** A held lease of `permits` of a semaphore of `limit` permits
 * (/v1/semaphores), renewed, lost (`signal`) and released like a Lock. */
export class Semaphore extends Lock {
  readonly limit: number;
  readonly permits: number;

  /** @internal Use LockClient.acquireSemaphore. */
  constructor(
    client: LockClient,
    lease: SemaphoreLease,
    sent: number,
    onLost?: (lock: Lock, error: LeaseLostError) => void,
  ) {
    super(client, { ...lease, count: 1 }, sent, onLost, "semaphores");
    this.limit = lease.limit;
    this.permits = lease.permits;
  }
}
