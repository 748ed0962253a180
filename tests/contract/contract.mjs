// contract.mjs -- drives every operation of openapi.yaml through every
// documented status against live lockservice instances and validates each
// response (status, Content-Type, body, documented headers) against the
// spec. Fails on a response the spec does not allow and on a documented
// (operation, status, problem code) that no test reached. TAP output, ends
// with "N passed, N failed". Started by tests/contract/run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  Contract, ok, diag, summary, startRedis, startService, stopAll, request, sleep, tmp, freePort,
} from './lib.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const spec = new Contract(process.env.OPENAPI_FILE || path.join(root, 'openapi.yaml'));
const KEY = 'contract-test-key-0123456789abcdef';
const BEARER = { Authorization: `Bearer ${KEY}` };
const READ_KEY = 'contract-read-key-0123456789abcdef';
const READ = { Authorization: `Bearer ${READ_KEY}` };

// One request, validated against the spec. opts: body, headers, status (the
// status the scenario expects), code (the problem code it expects), desc,
// check(res) -> list of extra problems.
async function call(svc, opKey, urlPath, opts = {}) {
  const method = opKey.startsWith('* ') ? opts.method : opKey.split(' ')[0];
  let res;
  const desc = `${svc.name}: ${method} ${urlPath.length > 70 ? urlPath.slice(0, 67) + '...' : urlPath}` +
    ` -> ${opts.status || '?'}${opts.code ? ' ' + opts.code : ''}${opts.desc ? ' (' + opts.desc + ')' : ''}`;
  try {
    res = await request(svc, method, urlPath, opts.body, opts.headers || {}, opts.timeout);
  } catch (e) {
    ok(false, desc, `request failed: ${e.message}`);
    return { status: 0, headers: {}, raw: '', json: undefined };
  }
  const errs = spec.check(opKey, res);
  if (opts.status && res.status !== opts.status) {
    errs.push(`expected status ${opts.status}, got ${res.status}: ${res.raw.slice(0, 300)}`);
  }
  if (opts.code && (!res.json || res.json.code !== opts.code)) {
    errs.push(`expected code ${opts.code}, got ${res.json ? res.json.code : '(no JSON)'}: ${res.raw.slice(0, 300)}`);
  }
  if (opts.check && errs.length === 0) {
    try { errs.push(...(opts.check(res) || [])); } catch (e) { errs.push(`check threw: ${e.message}`); }
  }
  ok(errs.length === 0, desc, [`request: ${method} ${urlPath} ${opts.body !== undefined ? JSON.stringify(opts.body).slice(0, 200) : ''}`, ...errs]);
  return res;
}

const ACQ = 'POST /v1/locks/{name}/acquire';
const REN = 'POST /v1/locks/{name}/renew';
const REL = 'POST /v1/locks/{name}/release';
const GETL = 'GET /v1/locks/{name}';
const HEADL = 'HEAD /v1/locks/{name}';
const CHK = 'POST /v1/locks/{name}/check';
const DEL = 'DELETE /v1/locks/{name}';
const PUTI = 'PUT /demo/inventory/{sku}';
const GETI = 'GET /demo/inventory/{sku}';
const HEADI = 'HEAD /demo/inventory/{sku}';
const BUY = 'POST /demo/inventory/{sku}/purchase';
const SACQ = 'POST /v1/semaphores/{name}/acquire';
const SREN = 'POST /v1/semaphores/{name}/renew';
const SREL = 'POST /v1/semaphores/{name}/release';
const GETS = 'GET /v1/semaphores/{name}';
const HEADS = 'HEAD /v1/semaphores/{name}';
const DELS = 'DELETE /v1/semaphores/{name}';
const LISTL = 'GET /v1/locks';
const HEADLL = 'HEAD /v1/locks';
const LISTS = 'GET /v1/semaphores';
const HEADLS = 'HEAD /v1/semaphores';

let uniq = 0;
const lockName = (p = 'c') => `${p}.${process.pid}-${++uniq}:x_y`;
const L = (name, op = '') => `/v1/locks/${encodeURIComponent(name)}${op ? '/' + op : ''}`;
const SP = (name, op = '') => `/v1/semaphores/${encodeURIComponent(name)}${op ? '/' + op : ''}`;
const I = (sku, op = '') => `/demo/inventory/${encodeURIComponent(sku)}${op ? '/' + op : ''}`;
const want = (cond, msg) => (cond ? [] : [msg]);
let redisPort = 0; // the shared redis-server, set by main()
const redisCli = (...args) => execFileSync('redis-cli', ['-p', String(redisPort), ...args], { encoding: 'utf8' });
const hex32 = () => Array.from({ length: 32 }, () => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');

// The body-handling failures every operation with a JSON body shares.
async function bodyErrors(svc, opKey, urlPath, validBody) {
  await call(svc, opKey, urlPath, { body: 'not json', headers: { 'Content-Type': 'application/json' }, status: 400, code: 'invalid_json' });
  await call(svc, opKey, urlPath, { body: '[1,2]', headers: { 'Content-Type': 'application/json' }, status: 400, code: 'invalid_json', desc: 'array body' });
  await call(svc, opKey, urlPath, { body: '{"a":' + '['.repeat(20) + ']'.repeat(20) + '}', headers: { 'Content-Type': 'application/json' }, status: 400, desc: 'nested too deep' });
  await call(svc, opKey, urlPath, { body: { ...validBody, surplus: 1 }, status: 400, code: 'invalid_field', desc: 'unknown field' });
  await call(svc, opKey, urlPath, { body: JSON.stringify(validBody), headers: { 'Content-Type': 'text/plain' }, status: 415, code: 'unsupported_media_type' });
  await call(svc, opKey, urlPath, { body: Buffer.from(JSON.stringify(validBody)), status: 415, code: 'unsupported_media_type', desc: 'no Content-Type' });
  const big = JSON.stringify({ ...validBody, owner: 'x'.repeat(17 * 1024) });
  await call(svc, opKey, urlPath, { body: big, headers: { 'Content-Type': 'application/json' }, status: 413, code: 'body_too_large' });
  await call(svc, opKey, urlPath, { body: JSON.stringify(validBody), headers: { 'Content-Type': 'application/json; charset=utf-8' }, desc: 'charset parameter accepted',
    check: (r) => want(r.status < 400 || r.json.code === 'not_held' || r.json.code === 'not_owner' || r.json.code === 'lock_held' || r.json.code === 'sold_out', `got ${r.status}`) });
}

async function lockTests(A) {
  const n = lockName();
  // acquire: grants, defaults, reentrancy
  const a1 = await call(A, ACQ, L(n, 'acquire'), { body: { ttl_ms: 5000, owner: 'worker-7' }, status: 200,
    check: (r) => [...want(r.json.count === 1, 'count != 1'), ...want(r.json.owner === 'worker-7', 'owner'),
      ...want(r.json.ttl_ms === 5000, 'ttl_ms'), ...want(r.json.name === n, 'name')] });
  const tok = a1.json && a1.json.token;
  await call(A, ACQ, L(n, 'acquire'), { body: { token: tok, ttl_ms: 6000 }, status: 200, desc: 're-enter',
    check: (r) => [...want(r.json.count === 2, `count ${r.json.count} != 2`), ...want(r.json.fence === a1.json.fence, 'fence changed on re-entry'),
      ...want(r.json.token === tok, 'token changed'), ...want(r.json.ttl_ms === 6000, 'ttl not reset')] });
  await call(A, ACQ, L(n, 'acquire'), { body: {}, status: 409, code: 'lock_held', desc: 'held, wait_ms 0',
    check: (r) => want(r.json.retry_after_ms > 0 && r.json.retry_after_ms <= 6000, `retry_after_ms ${r.json.retry_after_ms}`) });
  const t0 = Date.now();
  await call(A, ACQ, L(n, 'acquire'), { body: { wait_ms: 300 }, status: 409, code: 'lock_held', desc: 'held, waited 300 ms',
    check: () => want(Date.now() - t0 >= 280, `answered after ${Date.now() - t0} ms, before wait_ms ran out`) });
  await call(A, ACQ, L(n, 'acquire'), { body: { token: hex32() }, status: 409, code: 'not_owner', desc: 'foreign token' });
  // status
  await call(A, GETL, L(n), { status: 200, desc: 'held',
    check: (r) => [...want(r.json.held === true && r.json.count === 2 && r.json.owner === 'worker-7', 'state'),
      ...want(!r.raw.includes(tok), 'token leaked in status')] });
  await call(A, HEADL, L(n), { status: 200 });
  // renew
  await call(A, REN, L(n, 'renew'), { body: { token: tok }, status: 200, desc: 'default ttl',
    check: (r) => [...want(r.json.ttl_ms === 6000, `ttl_ms ${r.json.ttl_ms}, want the granted 6000`), ...want(r.json.count === 2, 'count')] });
  await call(A, REN, L(n, 'renew'), { body: { token: tok, ttl_ms: 7000 }, status: 200, check: (r) => want(r.json.ttl_ms === 7000, 'ttl_ms') });
  await call(A, REN, L(n, 'renew'), { body: { token: hex32() }, status: 409, code: 'not_owner' });
  await call(A, REL, L(n, 'release'), { body: { token: hex32() }, status: 409, code: 'not_owner' });
  // release twice (reentrant), then it is free
  await call(A, REL, L(n, 'release'), { body: { token: tok }, status: 200, check: (r) => want(r.json.count === 1 && r.json.released === true, 'count != 1') });
  await call(A, REL, L(n, 'release'), { body: { token: tok }, status: 200, check: (r) => want(r.json.count === 0, 'count != 0') });
  await call(A, GETL, L(n), { status: 200, desc: 'free', check: (r) => want(r.json.held === false, 'still held') });
  await call(A, REL, L(n, 'release'), { body: { token: tok }, status: 409, code: 'not_held' });
  await call(A, REN, L(n, 'renew'), { body: { token: tok }, status: 409, code: 'not_held' });
  await call(A, ACQ, L(n, 'acquire'), { body: { token: tok }, status: 409, code: 'not_owner', desc: 're-enter a released lease' });
  // a new grant has a newer fence; a waiter is woken by the release
  const b1 = await call(A, ACQ, L(n, 'acquire'), { status: 200, desc: 'no body at all',
    check: (r) => [...want(r.json.ttl_ms === 30000, `default ttl_ms ${r.json.ttl_ms}`), ...want(r.json.owner === '', 'default owner'),
      ...want(r.json.fence > a1.json.fence, 'fence did not increase')] });
  const waiting = call(A, ACQ, L(n, 'acquire'), { body: { wait_ms: 5000, ttl_ms: 1000 }, status: 200, desc: 'waiter granted on release',
    check: (r) => [...want(r.json.fence > b1.json.fence, 'fence did not increase'), ...want(r.ms < 3000, `took ${r.ms} ms`)] });
  await sleep(150);
  await call(A, REL, L(n, 'release'), { body: { token: b1.json && b1.json.token }, status: 200 });
  const w = await waiting;
  // expiry without release also wakes a waiter
  await call(A, ACQ, L(n, 'acquire'), { body: { wait_ms: 5000 }, status: 200, desc: 'waiter granted on expiry',
    check: (r) => want(r.json.fence > (w.json ? w.json.fence : 0), 'fence did not increase') });

  // a release hands the lock to the first queued waiter and keeps it for
  // it: status shows reserved_ms. The waiter here is a ghost queued in
  // Redis with no client behind it, so nobody claims the reservation while
  // we look. v1 used a dead instance's entry in the name's waiter set
  // (<prefix>waitq:<name>); v2 skips and drops waiters of dead instances,
  // so the ghost is queued the v2 way (its id in <prefix>{<name>}:queue, its
  // entry "<deadline ms> <ttl ms> <token> <owner>" in <prefix>{<name>}:waiters)
  // and its instance key is set, so that it looks alive.
  const rn = lockName('r');
  const rh = await call(A, ACQ, L(rn, 'acquire'), { status: 200, desc: 'holder of a lock a ghost waits for' });
  const pre = `contract${process.pid}:`;
  const ghostInstance = '0badc0de0badc0de';
  const ghost = `${ghostInstance}:0:1`;
  redisCli('RPUSH', `${pre}{${rn}}:queue`, ghost);
  // "<deadline> <queued> <ttl> <token> <lock delay> <request id|-> <owner>"
  redisCli('HSET', `${pre}{${rn}}:waiters`, ghost, `${Date.now() + 10000} ${Date.now()} 30000 ${hex32()} 0 - ghost`);
  redisCli('PEXPIRE', `${pre}{${rn}}:queue`, '10000');
  redisCli('PEXPIRE', `${pre}{${rn}}:waiters`, '10000');
  redisCli('SET', `${pre}{${rn}}:queue:alive:${ghostInstance}`, '1', 'PX', '10000');
  await call(A, REL, L(rn, 'release'), { body: { token: rh.json && rh.json.token }, status: 200 });
  await call(A, GETL, L(rn), { status: 200, desc: 'free, reserved for a woken waiter',
    check: (r) => want(r.json.held === false && r.json.reserved_ms > 0, `not reserved: ${r.raw}`) });
  redisCli('DEL', `${pre}{${rn}}:queue:alive:${ghostInstance}`);

  // boundaries the spec states
  const m = lockName('b');
  await call(A, ACQ, L(m, 'acquire'), { body: { ttl_ms: 3600000, wait_ms: 60000, owner: 'o'.repeat(128) }, status: 200, desc: 'maximum ttl_ms, wait_ms, owner' });
  await call(A, ACQ, L(lockName('e'), 'acquire'), { body: { ttl_ms: 1000, owner: 'é'.repeat(128) }, status: 200, desc: 'owner of 128 non-ASCII characters' });
  await call(A, ACQ, L('n'.repeat(128), 'acquire'), { body: { ttl_ms: 1000 }, status: 200, desc: 'name of 128 characters' });
  await call(A, ACQ, L('A-Za-z0-9._:-', 'acquire'), { body: { ttl_ms: 1000 }, status: 200, desc: 'every name character class' });
  const bad = [
    [{ ttl_ms: 0 }, 'ttl_ms 0'], [{ ttl_ms: 3600001 }, 'ttl_ms over max'], [{ ttl_ms: 1.5 }, 'ttl_ms 1.5'],
    [{ ttl_ms: '5' }, 'ttl_ms string'], [{ ttl_ms: true }, 'ttl_ms true'], [{ ttl_ms: null }, 'ttl_ms null'],
    ['{"ttl_ms":1e3}', 'ttl_ms 1e3'], [{ wait_ms: -1 }, 'wait_ms -1'], [{ wait_ms: 60001 }, 'wait_ms over max'],
    [{ owner: 'o'.repeat(129) }, 'owner 129 chars'], [{ owner: 7 }, 'owner number'], [{ owner: 'a\tb' }, 'owner control char'],
    [{ token: 'ABCDEF0123456789ABCDEF0123456789' }, 'token uppercase'], [{ token: 'abc' }, 'token short'],
    [{ ttl: 1000 }, 'typo ttl'],
  ];
  for (const [body, desc] of bad) {
    await call(A, ACQ, L(lockName(), 'acquire'), { body: typeof body === 'string' ? body : body,
      headers: typeof body === 'string' ? { 'Content-Type': 'application/json' } : {}, status: 400, code: 'invalid_field', desc });
  }
  for (const [body, desc] of [[{}, 'token missing'], [{ token: 'x' }, 'token malformed'], [{ token: hex32(), ttl_ms: 0 }, 'ttl_ms 0']]) {
    await call(A, REN, L(n, 'renew'), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [body, desc] of [[{}, 'token missing'], [{ token: hex32().toUpperCase() }, 'token uppercase'], [{ token: 5 }, 'token number']]) {
    await call(A, REL, L(n, 'release'), { body, status: 400, code: 'invalid_field', desc });
  }
  // invalid names
  for (const [name, desc] of [['n'.repeat(129), '129 characters'], ['bad name', 'space'], ['é', 'non-ASCII'], ['a*b', 'star']]) {
    await call(A, ACQ, L(name, 'acquire'), { body: {}, status: 400, code: 'invalid_name', desc });
    await call(A, REN, L(name, 'renew'), { body: { token: hex32() }, status: 400, code: 'invalid_name', desc });
    await call(A, REL, L(name, 'release'), { body: { token: hex32() }, status: 400, code: 'invalid_name', desc });
    await call(A, GETL, L(name), { status: 400, code: 'invalid_name', desc });
    await call(A, HEADL, L(name), { status: 400, desc });
  }
  // the body limit is 16 KiB: exactly 16384 bytes are accepted
  const edge = '{"ttl_ms":1000}';
  await call(A, ACQ, L(lockName(), 'acquire'), { body: edge + ' '.repeat(16384 - edge.length), headers: { 'Content-Type': 'application/json' }, status: 200, desc: 'body of exactly 16384 bytes' });
  await call(A, ACQ, L(lockName(), 'acquire'), { body: edge + ' '.repeat(16385 - edge.length), headers: { 'Content-Type': 'application/json' }, status: 413, code: 'body_too_large', desc: 'body of 16385 bytes' });
  // shared body failures
  await bodyErrors(A, ACQ, L(lockName(), 'acquire'), { ttl_ms: 1000 });
  await bodyErrors(A, REN, L(n, 'renew'), { token: hex32() });
  await bodyErrors(A, REL, L(n, 'release'), { token: hex32() });
}

// request_id, lock_delay_ms, mode, the status of a name with its queue,
// check and force release.
async function lockFeatureTests(A) {
  const n = lockName('f');
  const first = { ttl_ms: 5000, owner: 'rid', request_id: 'try-1', mode: 'exclusive', lock_delay_ms: 0 };
  const a = await call(A, ACQ, L(n, 'acquire'), { body: first, status: 200, desc: 'with request_id, mode and lock_delay_ms',
    check: (r) => [...want(r.json.mode === 'exclusive', `mode ${r.json.mode}`), ...want(r.json.replayed === undefined, 'replayed on a first try')] });
  const tok = a.json && a.json.token;
  await call(A, ACQ, L(n, 'acquire'), { body: first, status: 200, desc: 'the same request_id again: replayed',
    check: (r) => [...want(r.json.replayed === true, 'not replayed'), ...want(r.json.token === tok && r.json.fence === a.json.fence, 'another lease'),
      ...want(r.json.count === 1, `count ${r.json.count}`)] });
  await call(A, ACQ, L(n, 'acquire'), { body: { token: tok, request_id: 'again-1' }, status: 200, desc: 're-enter with a request_id',
    check: (r) => want(r.json.count === 2, `count ${r.json.count}`) });
  await call(A, REL, L(n, 'release'), { body: { token: tok, request_id: 'rel-1' }, status: 200, desc: 'release with a request_id',
    check: (r) => want(r.json.count === 1, `count ${r.json.count}`) });
  await call(A, REL, L(n, 'release'), { body: { token: tok, request_id: 'rel-1' }, status: 200, desc: 'the same release again drops no hold',
    check: (r) => want(r.json.count === 1, `count ${r.json.count}`) });
  // check
  await call(A, CHK, L(n, 'check'), { body: { token: tok }, status: 200, desc: 'the holder',
    check: (r) => [...want(r.json.held === true && r.json.fence === a.json.fence && r.json.count === 1, `state ${r.raw}`),
      ...want(!r.raw.includes(tok), 'token leaked in check')] });
  await call(A, CHK, L(n, 'check'), { body: { token: hex32() }, status: 409, code: 'not_owner', desc: 'another token' });
  // status with a waiter; a force release grants it at once
  const waiter = call(A, ACQ, L(n, 'acquire'), { body: { wait_ms: 5000, owner: 'queued' }, status: 200, desc: 'waiter granted by a force release',
    check: (r) => want(r.ms < 3000, `took ${r.ms} ms`) });
  await sleep(200);
  await call(A, GETL, L(n), { status: 200, desc: 'held, with a waiter',
    check: (r) => [...want(r.json.holder_count === 1 && r.json.holders.length === 1 && r.json.holders[0].owner === 'rid', `holders ${r.raw}`),
      ...want(r.json.waiting === 1 && r.json.queue.length === 1 && r.json.queue[0].owner === 'queued', `queue ${r.raw}`),
      ...want(!r.raw.includes(tok), 'token leaked in status')] });
  await call(A, DEL, L(n), { status: 200, desc: 'held', check: (r) => want(r.json.holders === 1 && r.json.name === n, `answer ${r.raw}`) });
  const w = await waiter;
  await call(A, REN, L(n, 'renew'), { body: { token: tok }, status: 409, code: 'not_held', desc: 'force-released lease' });
  await call(A, CHK, L(n, 'check'), { body: { token: tok }, status: 409, code: 'not_held', desc: 'force-released lease' });
  await call(A, ACQ, L(n, 'acquire'), { body: first, status: 409, code: 'not_held', desc: 'request_id of a lease that ended' });
  await call(A, REL, L(n, 'release'), { body: { token: w.json && w.json.token }, status: 200, desc: 'the woken waiter' });
  await call(A, DEL, L(n), { status: 200, desc: 'free', check: (r) => want(r.json.holders === 0, `holders ${r.json.holders}`) });
  await call(A, CHK, L(n, 'check'), { body: { token: hex32() }, status: 409, code: 'not_held', desc: 'free' });
  // lock-delay: after an expiry the name stays unavailable; a force release ends the delay
  const d = lockName('delay');
  await call(A, ACQ, L(d, 'acquire'), { body: { ttl_ms: 150, lock_delay_ms: 5000 }, status: 200, desc: 'with a lock-delay' });
  await sleep(400);
  await call(A, GETL, L(d), { status: 200, desc: 'in its lock-delay',
    check: (r) => want(r.json.held === false && r.json.delay_ms > 0 && r.json.delay_ms <= 5000, `not in its delay: ${r.raw}`) });
  await call(A, ACQ, L(d, 'acquire'), { body: {}, status: 409, code: 'lock_held', desc: 'in its lock-delay',
    check: (r) => want(r.json.retry_after_ms > 0 && r.json.retry_after_ms <= 5000, `retry_after_ms ${r.json.retry_after_ms}`) });
  await call(A, DEL, L(d), { status: 200, desc: 'in its lock-delay', check: (r) => want(r.json.holders === 0, `holders ${r.json.holders}`) });
  await call(A, ACQ, L(d, 'acquire'), { body: { ttl_ms: 1000 }, status: 200, desc: 'after the delay was force-released' });
  // what the new fields accept
  for (const [body, desc] of [[{ lock_delay_ms: -1 }, 'lock_delay_ms -1'], [{ lock_delay_ms: 60001 }, 'lock_delay_ms over max'],
    [{ request_id: '' }, 'request_id empty'], [{ request_id: 'r'.repeat(65) }, 'request_id 65 chars'], [{ request_id: 'a b' }, 'request_id space'],
    [{ mode: 'Shared' }, 'mode Shared'], [{ mode: 'read' }, 'mode unknown']]) {
    await call(A, ACQ, L(lockName(), 'acquire'), { body, status: 400, code: 'invalid_field', desc });
  }
  await call(A, ACQ, L(lockName(), 'acquire'), { body: { ttl_ms: 1000, request_id: 'A-Za-z0-9._:'.padEnd(64, 'x'), lock_delay_ms: 60000 }, status: 200, desc: 'request_id of 64 characters, lock_delay_ms 60000' });
  await call(A, REL, L(n, 'release'), { body: { token: hex32(), request_id: 'a/b' }, status: 400, code: 'invalid_field', desc: 'request_id with a slash' });
  for (const [body, desc] of [[{}, 'token missing'], [{ token: 'x' }, 'token malformed'], [{ token: hex32(), ttl_ms: 1 }, 'unknown member ttl_ms']]) {
    await call(A, CHK, L(n, 'check'), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [name, desc] of [['n'.repeat(129), '129 characters'], ['bad name', 'space']]) {
    await call(A, CHK, L(name, 'check'), { body: { token: hex32() }, status: 400, code: 'invalid_name', desc });
    await call(A, DEL, L(name), { status: 400, code: 'invalid_name', desc });
  }
  await bodyErrors(A, CHK, L(lockName(), 'check'), { token: hex32() });
}

// Shared (read) leases: they coexist, a queued exclusive request waits for
// them, status lists holders and queue with modes, re-entry in the other
// mode is mode_conflict, force release ends every shared lease.
async function sharedLockTests(A) {
  const n = lockName('sh');
  const s1 = await call(A, ACQ, L(n, 'acquire'), { body: { mode: 'shared', ttl_ms: 5000, owner: 'r1' }, status: 200, desc: 'shared',
    check: (r) => want(r.json.mode === 'shared', `mode ${r.json.mode}`) });
  const s2 = await call(A, ACQ, L(n, 'acquire'), { body: { mode: 'shared', ttl_ms: 5000, owner: 'r2' }, status: 200, desc: 'a second shared lease beside it',
    check: (r) => want(r.json.mode === 'shared' && r.json.token !== (s1.json && s1.json.token) && r.json.fence > (s1.json ? s1.json.fence : 0), `lease ${r.raw}`) });
  const t1 = s1.json && s1.json.token;
  await call(A, ACQ, L(n, 'acquire'), { body: { mode: 'shared', token: t1 }, status: 200, desc: 're-enter a shared lease',
    check: (r) => want(r.json.count === 2 && r.json.mode === 'shared', `lease ${r.raw}`) });
  await call(A, ACQ, L(n, 'acquire'), { body: { token: t1 }, status: 409, code: 'mode_conflict', desc: 'shared lease re-entered as exclusive' });
  await call(A, ACQ, L(n, 'acquire'), { body: {}, status: 409, code: 'lock_held', desc: 'exclusive while shared leases hold' });
  const writer = call(A, ACQ, L(n, 'acquire'), { body: { wait_ms: 5000, owner: 'writer' }, status: 200, desc: 'exclusive waiter granted by a force release' });
  await sleep(200);
  await call(A, ACQ, L(n, 'acquire'), { body: { mode: 'shared' }, status: 409, code: 'lock_held', desc: 'shared behind a queued exclusive request' });
  await call(A, GETL, L(n), { status: 200, desc: 'shared holders and an exclusive waiter',
    check: (r) => [...want(r.json.mode === 'shared' && r.json.holder_count === 2 && r.json.holders.every((h) => h.mode === 'shared'), `holders ${r.raw}`),
      ...want(r.json.queue.length === 1 && r.json.queue[0].mode === 'exclusive', `queue ${r.raw}`)] });
  await call(A, REN, L(n, 'renew'), { body: { token: s2.json && s2.json.token }, status: 200, desc: 'renew a shared lease',
    check: (r) => want(r.json.mode === 'shared', `mode ${r.json.mode}`) });
  await call(A, DEL, L(n), { status: 200, desc: 'two shared leases', check: (r) => want(r.json.holders === 2, `holders ${r.json.holders}`) });
  const w = await writer;
  const wt = w.json && w.json.token;
  await call(A, ACQ, L(n, 'acquire'), { body: { mode: 'shared', token: wt }, status: 409, code: 'mode_conflict', desc: 'exclusive lease re-entered as shared' });
  await call(A, REL, L(n, 'release'), { body: { token: wt }, status: 200, desc: 'the woken writer' });
}

// With --api-keys-file: check needs a key (a POST: not a read key); force
// release needs an admin key.
async function lockFeatureAuthTests(K) {
  const n = lockName('ka');
  for (const [hdrs, desc] of [[{}, 'no key'], [{ Authorization: 'Bearer wrong-key-wrong-key-wrong' }, 'wrong key']]) {
    await call(K, CHK, L(n, 'check'), { body: { token: hex32() }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, DEL, L(n), { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, 'OPTIONS /v1/locks/{name}/check', L(n, 'check'), { headers: hdrs, status: 401, code: 'unauthorized', desc });
  }
  await call(K, CHK, L(n, 'check'), { body: { token: hex32() }, headers: BEARER, status: 409, code: 'not_held', desc: 'with a client key' });
  await call(K, CHK, L(n, 'check'), { body: { token: hex32() }, headers: READ, status: 403, code: 'forbidden', desc: 'with a read key' });
  await call(K, DEL, L(n), { headers: READ, status: 403, code: 'forbidden', desc: 'with a read key' });
  await call(K, DEL, L(n), { headers: BEARER, status: 403, code: 'forbidden', desc: 'with a client key (not admin)' });
  await call(K, 'OPTIONS /v1/locks/{name}/check', L(n, 'check'), { headers: BEARER, status: 204, desc: 'with the key' });
}

// Redis unreachable: check and force release answer 503 within the timeout.
async function lockFeatureDeadRedisTests(D) {
  const n = lockName('dd');
  const fast = (r) => want(r.ms < 3000, `took ${r.ms} ms`);
  await call(D, CHK, L(n, 'check'), { body: { token: hex32() }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, DEL, L(n), { status: 503, code: 'backend_unavailable', check: fast });
}

// Semaphores: limits, permits, leases, the queue, force release.
async function semaphoreTests(A) {
  const n = lockName('sem');
  await call(A, GETS, SP(n), { status: 200, desc: 'free',
    check: (r) => want(r.json.limit === 0 && r.json.used === 0 && r.json.holders.length === 0 && r.json.queue.length === 0, `state ${r.raw}`) });
  await call(A, HEADS, SP(n), { status: 200 });
  const a = await call(A, SACQ, SP(n, 'acquire'), { body: { limit: 3, permits: 2, ttl_ms: 5000, owner: 'worker-7' }, status: 200,
    check: (r) => [...want(r.json.permits === 2 && r.json.limit === 3 && r.json.ttl_ms === 5000 && r.json.owner === 'worker-7', `lease ${r.raw}`),
      ...want(r.json.name === n, 'name'), ...want(r.json.replayed === undefined, 'replayed on a first try')] });
  const tok = a.json && a.json.token;
  const b = await call(A, SACQ, SP(n, 'acquire'), { body: { limit: 3 }, status: 200, desc: 'the last permit, defaults',
    check: (r) => [...want(r.json.permits === 1 && r.json.ttl_ms === 30000 && r.json.owner === '', `defaults ${r.raw}`),
      ...want(r.json.token !== tok, 'the same token twice'), ...want(r.json.fence > a.json.fence, 'fence did not increase')] });
  await call(A, SACQ, SP(n, 'acquire'), { body: { limit: 3 }, status: 409, code: 'no_permits', desc: 'none free, wait_ms 0',
    check: (r) => want(r.json.retry_after_ms > 0 && r.json.retry_after_ms <= 5000, `retry_after_ms ${r.json.retry_after_ms}`) });
  const t0 = Date.now();
  await call(A, SACQ, SP(n, 'acquire'), { body: { limit: 3, wait_ms: 300 }, status: 409, code: 'no_permits', desc: 'none free, waited 300 ms',
    check: () => want(Date.now() - t0 >= 280, `answered after ${Date.now() - t0} ms, before wait_ms ran out`) });
  await call(A, SACQ, SP(n, 'acquire'), { body: { limit: 4 }, status: 409, code: 'limit_mismatch', desc: 'another limit while held' });
  await call(A, GETS, SP(n), { status: 200, desc: 'held',
    check: (r) => [...want(r.json.limit === 3 && r.json.used === 3 && r.json.holder_count === 2 && r.json.holders.length === 2, `state ${r.raw}`),
      ...want(!r.raw.includes(tok), 'token leaked in status')] });
  await call(A, SREN, SP(n, 'renew'), { body: { token: tok, ttl_ms: 6000 }, status: 200,
    check: (r) => want(r.json.ttl_ms === 6000 && r.json.permits === 2 && r.json.fence === a.json.fence && r.json.token === tok, `lease ${r.raw}`) });
  await call(A, SREN, SP(n, 'renew'), { body: { token: tok }, status: 200, desc: 'default ttl', check: (r) => want(r.json.ttl_ms === 6000, `ttl_ms ${r.json.ttl_ms}`) });
  await call(A, SREN, SP(n, 'renew'), { body: { token: hex32() }, status: 409, code: 'not_held', desc: 'a token that holds nothing' });
  await call(A, SREL, SP(n, 'release'), { body: { token: hex32() }, status: 409, code: 'not_held', desc: 'a token that holds nothing' });
  // a waiter for 2 is granted when the 2 come back; status lists it meanwhile
  const waiter = call(A, SACQ, SP(n, 'acquire'), { body: { limit: 3, permits: 2, wait_ms: 5000, owner: 'queued' }, status: 200, desc: 'waiter granted on release',
    check: (r) => [...want(r.json.permits === 2, `permits ${r.json.permits}`), ...want(r.ms < 3000, `took ${r.ms} ms`)] });
  await sleep(200);
  await call(A, GETS, SP(n), { status: 200, desc: 'held, with a waiter',
    check: (r) => want(r.json.waiting === 1 && r.json.queue.length === 1 && r.json.queue[0].mode === 'semaphore' && r.json.queue[0].permits === 2, `queue ${r.raw}`) });
  await call(A, SREL, SP(n, 'release'), { body: { token: tok }, status: 200, check: (r) => want(r.json.permits === 2 && r.json.released === true, `answer ${r.raw}`) });
  await waiter;
  await call(A, SREL, SP(n, 'release'), { body: { token: tok }, status: 409, code: 'not_held', desc: 'released already' });
  await call(A, DELS, SP(n), { status: 200, desc: 'held', check: (r) => want(r.json.holders === 2 && r.json.name === n, `answer ${r.raw}`) });
  await call(A, SREN, SP(n, 'renew'), { body: { token: b.json && b.json.token }, status: 409, code: 'not_held', desc: 'force-released lease' });
  await call(A, DELS, SP(n), { status: 200, desc: 'free', check: (r) => want(r.json.holders === 0, `holders ${r.json.holders}`) });
  // request_id
  const m = lockName('semrid');
  const first = { limit: 2, owner: 'rid', request_id: 'try-1' };
  const r1 = await call(A, SACQ, SP(m, 'acquire'), { body: first, status: 200, desc: 'with request_id' });
  await call(A, SACQ, SP(m, 'acquire'), { body: first, status: 200, desc: 'the same request_id again: replayed',
    check: (r) => want(r.json.replayed === true && r1.json && r.json.token === r1.json.token, `answer ${r.raw}`) });
  await call(A, SREL, SP(m, 'release'), { body: { token: r1.json && r1.json.token, request_id: 'rel-1' }, status: 200, desc: 'release with a request_id' });
  await call(A, SREL, SP(m, 'release'), { body: { token: r1.json && r1.json.token, request_id: 'rel-1' }, status: 200, desc: 'the same release again' });
  await call(A, SACQ, SP(m, 'acquire'), { body: first, status: 409, code: 'not_held', desc: 'request_id of a lease that ended' });
  // boundaries and what the fields accept
  await call(A, SACQ, SP(lockName('semb'), 'acquire'), { body: { limit: 1024, permits: 1024, ttl_ms: 3600000, wait_ms: 60000, owner: 'o'.repeat(128) },
    status: 200, desc: 'limit and permits 1024, maximum ttl_ms, wait_ms, owner' });
  for (const [body, desc] of [[{}, 'limit missing'], [{ limit: 0 }, 'limit 0'], [{ limit: 1025 }, 'limit over --max-permits'],
    [{ limit: '3' }, 'limit string'], [{ limit: 3, permits: 4 }, 'permits over the limit'], [{ limit: 3, permits: 0 }, 'permits 0'],
    [{ limit: 3, ttl_ms: 0 }, 'ttl_ms 0'], [{ limit: 3, wait_ms: 60001 }, 'wait_ms over max'], [{ limit: 3, token: hex32() }, 'token (no re-entry)'],
    [{ limit: 3, mode: 'shared' }, 'mode'], [{ limit: 3, request_id: 'a b' }, 'request_id space']]) {
    await call(A, SACQ, SP(lockName('semv'), 'acquire'), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [body, desc] of [[{}, 'token missing'], [{ token: 'x' }, 'token malformed'], [{ token: hex32(), ttl_ms: 0 }, 'ttl_ms 0']]) {
    await call(A, SREN, SP(n, 'renew'), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [body, desc] of [[{}, 'token missing'], [{ token: hex32().toUpperCase() }, 'token uppercase'], [{ token: hex32(), request_id: 'a/b' }, 'request_id slash']]) {
    await call(A, SREL, SP(n, 'release'), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [name, desc] of [['n'.repeat(129), '129 characters'], ['bad name', 'space'], ['é', 'non-ASCII']]) {
    await call(A, SACQ, SP(name, 'acquire'), { body: { limit: 1 }, status: 400, code: 'invalid_name', desc });
    await call(A, SREN, SP(name, 'renew'), { body: { token: hex32() }, status: 400, code: 'invalid_name', desc });
    await call(A, SREL, SP(name, 'release'), { body: { token: hex32() }, status: 400, code: 'invalid_name', desc });
    await call(A, GETS, SP(name), { status: 400, code: 'invalid_name', desc });
    await call(A, HEADS, SP(name), { status: 400, desc });
    await call(A, DELS, SP(name), { status: 400, code: 'invalid_name', desc });
  }
  await bodyErrors(A, SACQ, SP(lockName('seme'), 'acquire'), { limit: 3, ttl_ms: 1000 });
  await bodyErrors(A, SREN, SP(n, 'renew'), { token: hex32() });
  await bodyErrors(A, SREL, SP(n, 'release'), { token: hex32() });
}

// With --api-keys-file: semaphores need a key; a read key may only GET;
// force release needs an admin key.
async function semaphoreAuthTests(K) {
  const n = lockName('ks');
  for (const [hdrs, desc] of [[{}, 'no key'], [{ Authorization: 'Bearer wrong-key-wrong-key-wrong' }, 'wrong key']]) {
    await call(K, SACQ, SP(n, 'acquire'), { body: { limit: 1 }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, SREN, SP(n, 'renew'), { body: { token: hex32() }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, SREL, SP(n, 'release'), { body: { token: hex32() }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, GETS, SP(n), { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, HEADS, SP(n), { headers: hdrs, status: 401, desc });
    await call(K, DELS, SP(n), { headers: hdrs, status: 401, code: 'unauthorized', desc });
    for (const [tpl, p] of [['/v1/semaphores/{name}/acquire', SP(n, 'acquire')], ['/v1/semaphores/{name}/renew', SP(n, 'renew')],
      ['/v1/semaphores/{name}/release', SP(n, 'release')], ['/v1/semaphores/{name}', SP(n)]]) {
      await call(K, `OPTIONS ${tpl}`, p, { headers: hdrs, status: 401, code: 'unauthorized', desc });
    }
  }
  const a = await call(K, SACQ, SP(n, 'acquire'), { body: { limit: 2 }, headers: BEARER, status: 200, desc: 'with the key' });
  await call(K, GETS, SP(n), { headers: READ, status: 200, desc: 'with a read key' });
  await call(K, SREN, SP(n, 'renew'), { body: { token: a.json && a.json.token }, headers: BEARER, status: 200, desc: 'with the key' });
  for (const [hdrs, desc] of [[READ, 'with a read key']]) {
    await call(K, SACQ, SP(n, 'acquire'), { body: { limit: 2 }, headers: hdrs, status: 403, code: 'forbidden', desc });
    await call(K, SREN, SP(n, 'renew'), { body: { token: hex32() }, headers: hdrs, status: 403, code: 'forbidden', desc });
    await call(K, SREL, SP(n, 'release'), { body: { token: hex32() }, headers: hdrs, status: 403, code: 'forbidden', desc });
    await call(K, DELS, SP(n), { headers: hdrs, status: 403, code: 'forbidden', desc });
  }
  await call(K, DELS, SP(n), { headers: BEARER, status: 403, code: 'forbidden', desc: 'with a client key (not admin)' });
  await call(K, SREL, SP(n, 'release'), { body: { token: a.json && a.json.token }, headers: BEARER, status: 200, desc: 'with the key' });
}

// Redis unreachable: 503 backend_unavailable within the Redis timeout.
async function semaphoreDeadRedisTests(D) {
  const n = lockName('ds');
  const fast = (r) => want(r.ms < 3000, `took ${r.ms} ms`);
  await call(D, SACQ, SP(n, 'acquire'), { body: { limit: 1 }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, SACQ, SP(n, 'acquire'), { body: { limit: 1, wait_ms: 1000 }, status: 503, code: 'backend_unavailable', check: fast, desc: 'with wait_ms' });
  await call(D, SREN, SP(n, 'renew'), { body: { token: hex32() }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, SREL, SP(n, 'release'), { body: { token: hex32() }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, GETS, SP(n), { status: 503, code: 'backend_unavailable', check: fast });
  await call(D, HEADS, SP(n), { status: 503, check: fast });
  await call(D, DELS, SP(n), { status: 503, code: 'backend_unavailable', check: fast });
}

// --max-waiters 1: a second semaphore waiter is 429.
async function semaphoreLimitTests(W) {
  const n = lockName('ws');
  await call(W, SACQ, SP(n, 'acquire'), { body: { limit: 1, ttl_ms: 10000 }, status: 200 });
  const first = call(W, SACQ, SP(n, 'acquire'), { body: { limit: 1, wait_ms: 1000 }, status: 409, code: 'no_permits', desc: 'the one allowed waiter' });
  await sleep(200);
  await call(W, SACQ, SP(n, 'acquire'), { body: { limit: 1, wait_ms: 1000 }, status: 429, code: 'too_many_waiters', desc: 'a second waiter' });
  await first;
}

// Listing (GET /v1/locks, GET /v1/semaphores): a held name and a queued one
// show, followed page by page; bad queries are 400 invalid_field.
async function listingTests(A) {
  const pre = `list${process.pid}-`;
  const held = `${pre}held`, sem = `${pre}sem`;
  const h = await call(A, ACQ, L(held, 'acquire'), { body: { ttl_ms: 60000, owner: 'lister' }, status: 200 });
  const waiter = call(A, ACQ, L(held, 'acquire'), { body: { wait_ms: 3000 }, status: 200, desc: 'a waiter, granted at the release' });
  await sleep(200);
  await call(A, SACQ, SP(sem, 'acquire'), { body: { limit: 3, permits: 2, ttl_ms: 60000 }, status: 200 });
  const found = (member, name) => (r) => want(r.json && r.json[member].some((e) => e.name === name), `${name} not on the page`);
  await call(A, LISTL, `/v1/locks?prefix=${pre}&limit=1000`, { status: 200, desc: 'held, with a waiter',
    check: (r) => [...found('locks', held)(r),
      ...want(r.json.locks.every((e) => !('queue' in e)), 'an entry has a queue'),
      ...want((r.json.locks.find((e) => e.name === held) || {}).waiting === 1, 'waiting is not 1')] });
  await call(A, HEADLL, `/v1/locks?prefix=${pre}`, { status: 200 });
  await call(A, LISTS, `/v1/semaphores?prefix=${pre}&limit=1000`, { status: 200, check: found('semaphores', sem) });
  await call(A, HEADLS, `/v1/semaphores?prefix=${pre}`, { status: 200 });
  // every page of a full iteration at limit 1 follows the schema; the held name is on one of them
  for (const [op, member] of [[LISTL, 'locks'], [LISTS, 'semaphores']]) {
    let cursor = null, seen = 0, pages = 0;
    do {
      const r = await call(A, op, `/v1/${member}?limit=1${cursor ? '&cursor=' + cursor : ''}`, { status: 200, desc: `page ${pages + 1} at limit 1` });
      if (!r.json) break;
      seen += r.json[member].filter((e) => e.name === (member === 'locks' ? held : sem)).length;
      cursor = r.json.next_cursor;
      pages++;
    } while (cursor && pages < 5000);
    ok(seen === 1, `${member}: a full iteration at limit 1 lists the held name once (${pages} pages)`, `seen ${seen} times`);
  }
  for (const q of ['limit=0', 'limit=1001', 'limit=x', 'prefix=a%2Fb', 'prefix=a*', 'cursor=abc', 'cursor=0', 'nope=1', 'limit=1&limit=2']) {
    await call(A, LISTL, `/v1/locks?${q}`, { status: 400, code: 'invalid_field', desc: q });
    await call(A, HEADLL, `/v1/locks?${q}`, { status: 400, desc: q });
    await call(A, LISTS, `/v1/semaphores?${q}`, { status: 400, code: 'invalid_field', desc: q });
    await call(A, HEADLS, `/v1/semaphores?${q}`, { status: 400, desc: q });
  }
  await call(A, REL, L(held, 'release'), { body: { token: h.json && h.json.token }, status: 200 });
  const w = await waiter;
  await call(A, REL, L(held, 'release'), { body: { token: w.json && w.json.token }, status: 200, desc: 'the waiter lets go' });
  await call(A, LISTL, `/v1/locks?prefix=${held}`, { status: 200, desc: 'released: absent',
    check: (r) => want(r.json.locks.length === 0, `still listed: ${r.raw.slice(0, 200)}`) });
}

async function listingAuthTests(K) {
  for (const [hdrs, desc] of [[{}, 'no key'], [{ Authorization: 'Bearer wrong-key-wrong-key-wrong' }, 'wrong key']]) {
    await call(K, LISTL, '/v1/locks', { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, HEADLL, '/v1/locks', { headers: hdrs, status: 401, desc });
    await call(K, LISTS, '/v1/semaphores', { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, HEADLS, '/v1/semaphores', { headers: hdrs, status: 401, desc });
    await call(K, 'OPTIONS /v1/locks', '/v1/locks', { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, 'OPTIONS /v1/semaphores', '/v1/semaphores', { headers: hdrs, status: 401, code: 'unauthorized', desc });
  }
  await call(K, LISTL, '/v1/locks', { headers: READ, status: 200, desc: 'with a read key' });
  await call(K, LISTS, '/v1/semaphores', { headers: BEARER, status: 200, desc: 'with the key' });
  await call(K, '* method-not-allowed', '/v1/locks', { method: 'POST', body: {}, headers: BEARER, status: 405, code: 'method_not_allowed' });
}

async function listingDeadRedisTests(D) {
  const fast = (r) => want(r.ms < 3000, `took ${r.ms} ms`);
  await call(D, LISTL, '/v1/locks', { status: 503, code: 'backend_unavailable', check: fast });
  await call(D, HEADLL, '/v1/locks', { status: 503, check: fast });
  await call(D, LISTS, '/v1/semaphores?limit=5', { status: 503, code: 'backend_unavailable', check: fast });
  await call(D, HEADLS, '/v1/semaphores', { status: 503, check: fast });
}

async function opsTests(A) {
  await call(A, 'GET /healthz', '/healthz', { status: 200 });
  await call(A, 'HEAD /healthz', '/healthz', { status: 200 });
  await call(A, 'GET /readyz', '/readyz', { status: 200 });
  await call(A, 'HEAD /readyz', '/readyz', { status: 200 });
  await call(A, 'GET /metrics', '/metrics', { status: 200,
    check: (r) => [...want(/version=0\.0\.4/.test(r.headers['content-type']), `Content-Type ${r.headers['content-type']}`),
      ...['lockservice_http_requests_total', 'lockservice_acquire_total', 'lockservice_waiters',
        'lockservice_redis_errors_total', 'lockservice_http_request_duration_seconds_bucket']
        .filter((m) => !r.raw.includes(m)).map((m) => `metric ${m} missing`)] });
  await call(A, 'HEAD /metrics', '/metrics', { status: 200 });
  await call(A, 'GET /openapi.yaml', '/openapi.yaml', { status: 200,
    check: (r) => want(r.raw === spec.text, 'the served contract differs from openapi.yaml (rebuild with make)') });
  await call(A, 'HEAD /openapi.yaml', '/openapi.yaml', { status: 200 });
  // A contended name for the hot-locks table.
  const hot = lockName('hot');
  await call(A, ACQ, L(hot, 'acquire'), { body: { ttl_ms: 60000 }, status: 200 });
  await call(A, ACQ, L(hot, 'acquire'), { body: {}, status: 409, code: 'lock_held', desc: 'contended' });
  await call(A, 'GET /v1/stats/hot', '/v1/stats/hot?limit=100', { status: 200,
    check: (r) => want(r.json && r.json.names.some((e) => e.name === hot && e.waits >= 1), `${hot} not listed`) });
  await call(A, 'GET /v1/stats/hot', '/v1/stats/hot?limit=1000', { status: 400, code: 'invalid_field' });
  await call(A, 'GET /v1/stats/hot', '/v1/stats/hot?top=1', { status: 400, code: 'invalid_field', desc: 'unknown parameter' });
  await call(A, 'HEAD /v1/stats/hot', '/v1/stats/hot', { status: 200 });
  await call(A, 'HEAD /v1/stats/hot', '/v1/stats/hot?limit=0', { status: 400 });
}

// OPTIONS on every path, and 405 with Allow for methods a path does not serve.
async function methodTests(A) {
  const sample = { '{name}': 'opt-lock', '{sku}': 'opt-sku', '{file}': 'common.js' };
  for (const tpl of Object.keys(spec.doc.paths)) {
    const p = tpl.replace(/\{\w+\}/g, (m) => sample[m]);
    const documented = spec.methodsOf(tpl);
    const allowOk = (r) => {
      const got = (r.headers.allow || '').split(',').map((s) => s.trim()).filter(Boolean).sort();
      const exp = [...documented].sort();
      return want(JSON.stringify(got) === JSON.stringify(exp), `Allow '${r.headers.allow}', spec documents ${exp.join(', ')}`);
    };
    if (documented.includes('OPTIONS')) {
      await call(A, `OPTIONS ${tpl}`, p, { status: 204, check: allowOk });
    }
    for (const m of ['GET', 'PUT', 'POST', 'DELETE', 'PATCH']) {
      if (documented.includes(m)) continue;
      await call(A, '* method-not-allowed', p, { method: m, status: 405, code: 'method_not_allowed', check: allowOk });
    }
  }
  for (const p of ['/', '/nope', '/v1/lock', '/v1/locks/x/steal', '/v1/locks/x/acquire/more', '/demo/inventory', '/healthz/x']) {
    await call(A, '* unknown-route', p, { method: 'GET', status: 404, code: 'not_found' });
  }
  await call(A, '* unknown-route', '/nope', { method: 'POST', body: {}, status: 404, code: 'not_found' });
  // Framing the service will not trust, on any route: answered at once, and
  // the connection closes after the answer.
  const closes = (r) => want((r.headers.connection || '').toLowerCase() === 'close', `Connection '${r.headers.connection}'`);
  await call(A, '* unsupported-transfer-encoding', L(lockName(), 'acquire'), {
    method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'gzip' },
    status: 501, code: 'not_implemented', check: closes,
  });
  await call(A, '* bad-framing', L(lockName(), 'acquire'), {
    method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Content-Length': '2' },
    status: 400, code: 'invalid_request', check: closes,
  });
}

async function demoTests(A) {
  const sku = `sku-${process.pid}`;
  await call(A, GETI, I(sku), { status: 404, code: 'sku_not_found' });
  await call(A, HEADI, I(sku), { status: 404 });
  await call(A, BUY, I(sku, 'purchase'), { body: { mode: 'unsafe' }, status: 404, code: 'sku_not_found' });
  await call(A, PUTI, I(sku), { body: { stock: 2 }, status: 200,
    check: (r) => want(r.json.stock === 2 && r.json.initial_stock === 2 && r.json.orders === 0 && r.json.oversold === 0, 'state') });
  await call(A, GETI, I(sku), { status: 200 });
  await call(A, HEADI, I(sku), { status: 200 });
  await call(A, BUY, I(sku, 'purchase'), { body: { mode: 'unsafe', work_ms: 0 }, status: 201,
    check: (r) => want(r.json.fence === 0 && r.json.remaining === 1 && r.json.quantity === 1 && r.json.sku === sku, 'order') });
  const f1 = await call(A, BUY, I(sku, 'purchase'), { body: { mode: 'fenced', work_ms: 0 }, status: 201,
    check: (r) => want(r.json.fence > 0 && r.json.remaining === 0, 'order') });
  for (const mode of ['unsafe', 'locked', 'fenced']) {
    await call(A, BUY, I(sku, 'purchase'), { body: { mode, work_ms: 0 }, status: 409, code: 'sold_out', desc: mode });
  }
  await call(A, PUTI, I(sku), { body: { stock: 1000000 }, status: 200, desc: 'maximum stock' });
  await call(A, BUY, I(sku, 'purchase'), { body: { mode: 'locked', quantity: 1000, work_ms: 10, pause_ms: 0, ttl_ms: 2000, wait_ms: 1000 }, status: 201,
    check: (r) => [...want(r.json.remaining === 999000, `remaining ${r.json.remaining}, want 999000`),
      ...want(r.json.fence > (f1.json ? f1.json.fence : 0), `fence ${r.json.fence} in locked mode; the contract says 0 only in unsafe mode, so want the lease's fence (> ${f1.json && f1.json.fence})`)] });
  await call(A, GETI, I(sku), { status: 200, check: (r) => want(r.json.orders === 1000 && r.json.oversold === 0, 'orders') });
  // lock_held: someone holds inventory:{sku}
  const h = await call(A, ACQ, L(`inventory:${sku}`, 'acquire'), { body: { ttl_ms: 5000 }, status: 200, desc: 'hold the SKU lock' });
  for (const mode of ['locked', 'fenced']) {
    await call(A, BUY, I(sku, 'purchase'), { body: { mode, wait_ms: 0 }, status: 409, code: 'lock_held', desc: mode });
  }
  await call(A, BUY, I(sku, 'purchase'), { body: { mode: 'locked', wait_ms: 200 }, status: 409, code: 'lock_held', desc: 'waited 200 ms' });
  await call(A, REL, L(`inventory:${sku}`, 'release'), { body: { token: h.json && h.json.token }, status: 200 });
  // stale_fence: buyer 1's lease expires during its pause; buyer 2 writes with a newer fence
  await call(A, PUTI, I(sku), { body: { stock: 10 }, status: 200 });
  const slow = call(A, BUY, I(sku, 'purchase'), { body: { mode: 'fenced', ttl_ms: 150, pause_ms: 600, work_ms: 0 }, status: 409, code: 'stale_fence', desc: 'paused past its lease' });
  await sleep(350);
  await call(A, BUY, I(sku, 'purchase'), { body: { mode: 'fenced', work_ms: 0, wait_ms: 1000 }, status: 201, desc: 'buyer after the expiry' });
  await slow;
  await call(A, GETI, I(sku), { status: 200, check: (r) => want(r.json.orders === 1 && r.json.stock === 9, `orders ${r.json.orders}, stock ${r.json.stock}`) });
  // validation
  for (const [body, desc] of [[{}, 'stock missing'], [{ stock: -1 }, 'stock -1'], [{ stock: 1000001 }, 'stock over max'], [{ stock: 1.5 }, 'stock 1.5'], [{ stock: '1' }, 'stock string']]) {
    await call(A, PUTI, I(sku), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [body, desc] of [[{}, 'mode missing'], [{ mode: 'fast' }, 'mode unknown'], [{ mode: 'unsafe', quantity: 0 }, 'quantity 0'],
    [{ mode: 'unsafe', quantity: 1001 }, 'quantity over max'], [{ mode: 'unsafe', work_ms: 10001 }, 'work_ms over max'],
    [{ mode: 'unsafe', pause_ms: 60001 }, 'pause_ms over max'], [{ mode: 'locked', ttl_ms: 0 }, 'ttl_ms 0'],
    [{ mode: 'locked', wait_ms: 60001 }, 'wait_ms over max']]) {
    await call(A, BUY, I(sku, 'purchase'), { body, status: 400, code: 'invalid_field', desc });
  }
  for (const [s, desc] of [['s'.repeat(65), '65 characters'], ['bad sku', 'space']]) {
    await call(A, PUTI, I(s), { body: { stock: 1 }, status: 400, code: 'invalid_name', desc });
    await call(A, GETI, I(s), { status: 400, code: 'invalid_name', desc });
    await call(A, HEADI, I(s), { status: 400, desc });
    await call(A, BUY, I(s, 'purchase'), { body: { mode: 'unsafe' }, status: 400, code: 'invalid_name', desc });
  }
  await call(A, PUTI, I('s'.repeat(64)), { body: { stock: 0 }, status: 200, desc: 'SKU of 64 characters' });
  await bodyErrors(A, PUTI, I(sku), { stock: 1 });
  await bodyErrors(A, BUY, I(sku, 'purchase'), { mode: 'unsafe', work_ms: 0 });
}

// The browser pages: every file with its headers, revalidation, the
// redirects; open with API keys too; /demo* only with --demo.
async function pageTests(A, K, P) {
  for (const [page, files] of [['ui', ['ui.js', 'ui.css', 'common.js', 'common.css']], ['demo', ['demo.js', 'demo.css', 'common.js']]]) {
    await call(A, `GET /${page}`, `/${page}`, { status: 301 });
    await call(A, `HEAD /${page}`, `/${page}`, { status: 301 });
    const html = await call(A, `GET /${page}/`, `/${page}/`, { status: 200 });
    await call(A, `HEAD /${page}/`, `/${page}/`, { status: 200 });
    const etag = { 'If-None-Match': html.headers.etag || '"none"' };
    await call(A, `GET /${page}/`, `/${page}/`, { headers: etag, status: 304, desc: 'If-None-Match' });
    await call(A, `HEAD /${page}/`, `/${page}/`, { headers: etag, status: 304, desc: 'If-None-Match' });
    for (const f of files) {
      const r = await call(A, `GET /${page}/{file}`, `/${page}/${f}`, { status: 200 });
      await call(A, `HEAD /${page}/{file}`, `/${page}/${f}`, { status: 200 });
      const tag = { 'If-None-Match': r.headers.etag || '"none"' };
      await call(A, `GET /${page}/{file}`, `/${page}/${f}`, { headers: tag, status: 304, desc: 'If-None-Match' });
      await call(A, `HEAD /${page}/{file}`, `/${page}/${f}`, { headers: tag, status: 304, desc: 'If-None-Match' });
    }
    await call(A, `GET /${page}/{file}`, `/${page}/nothing.js`, { status: 404, code: 'not_found' });
    await call(A, `HEAD /${page}/{file}`, `/${page}/nothing.js`, { status: 404 });
    await call(A, `GET /${page}/{file}`, `/${page}/a%20b.js`, { status: 400, code: 'invalid_name' });
    await call(K, `GET /${page}/`, `/${page}/`, { status: 200, desc: 'open without a key' });
    await call(K, `GET /${page}/{file}`, `/${page}/common.js`, { status: 200, desc: 'open without a key' });
  }
  await call(P, '* unknown-route', '/demo/', { method: 'GET', status: 404, code: 'not_found', desc: 'no --demo' });
  await call(P, '* unknown-route', '/demo/demo.js', { method: 'GET', status: 404, code: 'not_found', desc: 'no --demo' });
  await call(P, 'GET /ui/', '/ui/', { status: 200, desc: 'without --demo' });
}

// With --api-keys-file: /v1 and /demo need the key; operations endpoints stay open.
async function authTests(K) {
  const n = lockName('k');
  const noKey = {};
  const wrong = { Authorization: 'Bearer wrong-key-wrong-key-wrong' };
  for (const [hdrs, desc] of [[noKey, 'no key'], [wrong, 'wrong key'], [{ Authorization: `Basic ${KEY}` }, 'not Bearer']]) {
    await call(K, ACQ, L(n, 'acquire'), { body: {}, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, REN, L(n, 'renew'), { body: { token: hex32() }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, REL, L(n, 'release'), { body: { token: hex32() }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, GETL, L(n), { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, HEADL, L(n), { headers: hdrs, status: 401, desc });
    await call(K, PUTI, I('k'), { body: { stock: 1 }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, GETI, I('k'), { headers: hdrs, status: 401, code: 'unauthorized', desc });
    await call(K, HEADI, I('k'), { headers: hdrs, status: 401, desc });
    await call(K, BUY, I('k', 'purchase'), { body: { mode: 'unsafe' }, headers: hdrs, status: 401, code: 'unauthorized', desc });
    for (const [tpl, p] of [['/v1/locks/{name}/acquire', L(n, 'acquire')], ['/v1/locks/{name}/renew', L(n, 'renew')],
      ['/v1/locks/{name}/release', L(n, 'release')], ['/v1/locks/{name}', L(n)],
      ['/demo/inventory/{sku}', I('k')], ['/demo/inventory/{sku}/purchase', I('k', 'purchase')]]) {
      await call(K, `OPTIONS ${tpl}`, p, { headers: hdrs, status: 401, code: 'unauthorized', desc });
    }
  }
  await call(K, 'GET /v1/stats/hot', '/v1/stats/hot', { status: 401, code: 'unauthorized' });
  await call(K, 'HEAD /v1/stats/hot', '/v1/stats/hot', { status: 401 });
  await call(K, 'OPTIONS /v1/stats/hot', '/v1/stats/hot', { status: 401, code: 'unauthorized' });
  await call(K, 'GET /v1/stats/hot', '/v1/stats/hot', { headers: READ, status: 200, desc: 'with a read key' });
  await call(K, 'OPTIONS /v1/locks/{name}', L(n), { headers: BEARER, status: 204, desc: 'with the key' });
  const a = await call(K, ACQ, L(n, 'acquire'), { body: {}, headers: BEARER, status: 200, desc: 'with the key' });
  await call(K, GETL, L(n), { headers: BEARER, status: 200, desc: 'with the key' });
  await call(K, REN, L(n, 'renew'), { body: { token: a.json && a.json.token }, headers: BEARER, status: 200, desc: 'with the key' });
  await call(K, REL, L(n, 'release'), { body: { token: a.json && a.json.token }, headers: BEARER, status: 200, desc: 'with the key' });
  await call(K, PUTI, I('k'), { body: { stock: 1 }, headers: BEARER, status: 200, desc: 'with the key' });
  // A read key: GET and HEAD only, anything else 403 forbidden.
  const r = 'with a read key';
  await call(K, GETL, L(n), { headers: READ, status: 200, desc: r });
  await call(K, HEADL, L(n), { headers: READ, status: 200, desc: r });
  await call(K, GETI, I('k'), { headers: READ, status: 200, desc: r });
  await call(K, ACQ, L(n, 'acquire'), { body: {}, headers: READ, status: 403, code: 'forbidden', desc: r });
  await call(K, REN, L(n, 'renew'), { body: { token: hex32() }, headers: READ, status: 403, code: 'forbidden', desc: r });
  await call(K, REL, L(n, 'release'), { body: { token: hex32() }, headers: READ, status: 403, code: 'forbidden', desc: r });
  await call(K, PUTI, I('k'), { body: { stock: 1 }, headers: READ, status: 403, code: 'forbidden', desc: r });
  await call(K, BUY, I('k', 'purchase'), { body: { mode: 'unsafe' }, headers: READ, status: 403, code: 'forbidden', desc: r });
  for (const p of ['healthz', 'readyz', 'metrics', 'openapi.yaml']) {
    await call(K, `GET /${p}`, `/${p}`, { status: 200, desc: 'open without a key' });
  }
}

// Redis unreachable: 503 backend_unavailable within the Redis timeout.
async function deadRedisTests(D) {
  const n = lockName('d');
  const fast = (r) => want(r.ms < 3000, `took ${r.ms} ms`);
  await call(D, ACQ, L(n, 'acquire'), { body: {}, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, ACQ, L(n, 'acquire'), { body: { wait_ms: 1000 }, status: 503, code: 'backend_unavailable', check: fast, desc: 'with wait_ms' });
  await call(D, REN, L(n, 'renew'), { body: { token: hex32() }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, REL, L(n, 'release'), { body: { token: hex32() }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, GETL, L(n), { status: 503, code: 'backend_unavailable', check: fast });
  await call(D, HEADL, L(n), { status: 503, check: fast });
  await call(D, 'GET /readyz', '/readyz', { status: 503, code: 'backend_unavailable', check: fast });
  await call(D, 'HEAD /readyz', '/readyz', { status: 503, check: fast });
  await call(D, 'GET /healthz', '/healthz', { status: 200, desc: 'alive without Redis' });
  await call(D, PUTI, I('d'), { body: { stock: 1 }, status: 503, code: 'backend_unavailable', check: fast });
  await call(D, GETI, I('d'), { status: 503, code: 'backend_unavailable', check: fast });
  await call(D, HEADI, I('d'), { status: 503, check: fast });
  await call(D, BUY, I('d', 'purchase'), { body: { mode: 'unsafe' }, status: 503, code: 'backend_unavailable', check: fast });
}

// --max-waiters 1 --max-hold-count 2.
async function limitTests(W) {
  const n = lockName('w');
  const a = await call(W, ACQ, L(n, 'acquire'), { body: { ttl_ms: 10000 }, status: 200 });
  const tok = a.json && a.json.token;
  await call(W, ACQ, L(n, 'acquire'), { body: { token: tok }, status: 200, desc: 'second hold' });
  await call(W, ACQ, L(n, 'acquire'), { body: { token: tok }, status: 409, code: 'hold_limit', desc: 'third hold over --max-hold-count 2' });
  const first = call(W, ACQ, L(n, 'acquire'), { body: { wait_ms: 1000 }, status: 409, code: 'lock_held', desc: 'the one allowed waiter' });
  await sleep(200);
  await call(W, ACQ, L(n, 'acquire'), { body: { wait_ms: 1000 }, status: 429, code: 'too_many_waiters', desc: 'a second waiter' });
  await call(W, PUTI, I('w'), { body: { stock: 5 }, status: 200 });
  await call(W, BUY, I('w', 'purchase'), { body: { mode: 'unsafe', work_ms: 10 }, status: 429, code: 'too_many_waiters', desc: 'work_ms needs a waiter slot' });
  await first;
}

// Without --demo every /demo path is 404 not_found.
async function noDemoTests(P) {
  await call(P, PUTI, I('p'), { body: { stock: 1 }, status: 404, code: 'not_found', desc: 'no --demo' });
  await call(P, GETI, I('p'), { status: 404, code: 'not_found', desc: 'no --demo' });
  await call(P, HEADI, I('p'), { status: 404, desc: 'no --demo' });
  await call(P, BUY, I('p', 'purchase'), { body: { mode: 'unsafe' }, status: 404, code: 'not_found', desc: 'no --demo' });
  await call(P, 'OPTIONS /demo/inventory/{sku}', I('p'), { status: 404, code: 'not_found', desc: 'no --demo' });
  await call(P, 'OPTIONS /demo/inventory/{sku}/purchase', I('p', 'purchase'), { status: 404, code: 'not_found', desc: 'no --demo' });
}

// Graceful shutdown answers suspended requests 503 shutting_down, then exits 0.
async function shutdownTests(S, headers) {
  const n = lockName('s');
  await call(S, ACQ, L(n, 'acquire'), { body: { ttl_ms: 20000 }, headers, status: 200 });
  await call(S, PUTI, I('s'), { body: { stock: 5 }, headers, status: 200 });
  const waiter = call(S, ACQ, L(n, 'acquire'), { body: { wait_ms: 8000 }, headers, status: 503, code: 'shutting_down', desc: 'waiting when SIGTERM arrives' });
  // A buyer waiting for the SKU's lock is answered 503; one already at work
  // (holding the lock of another SKU) is let finish: 201.
  await call(S, ACQ, L('inventory:s', 'acquire'), { body: { ttl_ms: 20000 }, headers, status: 200 });
  await call(S, PUTI, I('s2'), { body: { stock: 5 }, headers, status: 200 });
  const buyer = call(S, BUY, I('s', 'purchase'), { body: { mode: 'locked', wait_ms: 8000 }, headers, status: 503, code: 'shutting_down', desc: 'waiting for the lock when SIGTERM arrives' });
  const worker = call(S, BUY, I('s2', 'purchase'), { body: { mode: 'locked', work_ms: 1000 }, headers, status: 201, desc: 'at work when SIGTERM arrives: finishes' });
  await call(S, SACQ, SP(n, 'acquire'), { body: { limit: 1, ttl_ms: 20000 }, headers, status: 200 });
  const semWaiter = call(S, SACQ, SP(n, 'acquire'), { body: { limit: 1, wait_ms: 8000 }, headers, status: 503, code: 'shutting_down', desc: 'a semaphore waiter when SIGTERM arrives' });
  await sleep(300);
  S.child.kill('SIGTERM');
  await Promise.all([waiter, buyer, worker, semWaiter]);
  const ex = await Promise.race([S.child.exited, sleep(12000).then(() => null)]);
  ok(ex && ex.code === 0, `${S.name}: SIGTERM: the service exits 0`, `exit: ${JSON.stringify(ex)}`);
}

// The validator must reject what the spec does not allow; a validator that
// accepts everything would pass every live check.
function selfCheck() {
  const mk = (method, status, ct, body, headers = {}) => ({ method, status, headers: { 'content-type': ct, ...headers },
    raw: typeof body === 'string' ? body : JSON.stringify(body), json: typeof body === 'string' ? undefined : body });
  const lease = { name: 'a', token: 'f'.repeat(32), fence: 5, ttl_ms: 100, count: 1, owner: '', mode: 'exclusive' };
  const prob = (status, code, extra = {}) => ({ type: 'about:blank', title: 't', status, code, detail: 'd', ...extra });
  const cases = [
    [ACQ, mk('POST', 200, 'application/json', lease), true, 'a valid lease'],
    [ACQ, mk('POST', 200, 'application/json', { ...lease, extra: 1 }), false, 'an undocumented member'],
    [ACQ, mk('POST', 200, 'application/json', { ...lease, replayed: true }), true, 'a replayed lease'],
    [ACQ, mk('POST', 200, 'application/json', { ...lease, replayed: false }), false, 'replayed false'],
    [ACQ, mk('POST', 200, 'application/json', { ...lease, mode: 'shared' }), true, 'a shared lease'],
    [ACQ, mk('POST', 200, 'application/json', { ...lease, mode: 'read' }), false, 'a mode that is none'],
    [GETL, mk('GET', 200, 'application/json', { name: 'a', held: true, owner: '', mode: 'exclusive', fence: 5, ttl_ms: 9, count: 1, held_ms: 1,
      holders: [{ owner: '', mode: 'exclusive', fence: 5, ttl_ms: 9, count: 1, held_ms: 1 }], holder_count: 1, waiting: 0, queue: [] }), true, 'a held status'],
    [GETL, mk('GET', 200, 'application/json', { name: 'a', held: true, owner: '', mode: 'exclusive', fence: 5, ttl_ms: 9, count: 1, held_ms: 1,
      holders: [{ owner: '', mode: 'exclusive', fence: 5, ttl_ms: 9, count: 1, held_ms: 1, token: 'f'.repeat(32) }], holder_count: 1, waiting: 0, queue: [] }), false, 'a holder with its token'],
    [GETL, mk('GET', 200, 'application/json', { name: 'a', held: false, waiting: 1 }), false, 'a free status with waiting but no queue'],
    [DEL, mk('DELETE', 200, 'application/json', { name: 'a', released: true, holders: 2 }), true, 'two shared holders'],
    [DEL, mk('DELETE', 200, 'application/json', { name: 'a', released: true, holders: -1 }), false, 'holders below 0'],
    [ACQ, mk('POST', 200, 'application/json', { ...lease, token: 'F'.repeat(32) }), false, 'an uppercase token'],
    [ACQ, mk('POST', 200, 'text/plain', lease), false, 'an undocumented Content-Type'],
    [ACQ, mk('POST', 204, 'application/json', ''), false, 'an undocumented status'],
    [ACQ, mk('POST', 409, 'application/problem+json', prob(409, 'lock_held', { retry_after_ms: 1500 }), { 'retry-after': '2' }), true, 'lock_held'],
    [ACQ, mk('POST', 409, 'application/problem+json', prob(409, 'lock_held', { retry_after_ms: 1500 })), false, 'lock_held without Retry-After'],
    [ACQ, mk('POST', 409, 'application/problem+json', prob(409, 'sold_out')), false, 'a code the operation does not list'],
    [ACQ, mk('POST', 429, 'application/problem+json', prob(429, 'too_many_waiters')), false, '429 without Retry-After'],
    [REN, mk('POST', 409, 'application/problem+json', prob(400, 'not_held')), false, 'problem status differs from HTTP status'],
    ['* method-not-allowed', mk('DELETE', 405, 'application/problem+json', prob(405, 'method_not_allowed')), false, '405 without Allow'],
    [HEADL, mk('HEAD', 200, 'application/json', '{}'), false, 'HEAD with a body'],
  ];
  const saved = new Set(spec.covered);
  for (const [op, res, valid, desc] of cases) {
    const errs = spec.check(op, res);
    ok((errs.length === 0) === valid, `validator self-check: ${valid ? 'accepts' : 'rejects'} ${desc}`, errs);
  }
  spec.covered = saved; // synthetic responses cover nothing
}

async function main() {
  selfCheck();
  process.env.LOCKSERVICE_BIN = process.env.LOCKSERVICE_BIN || path.join(root, 'lockservice');
  diag(`contract: ${spec.ops.size} operations in openapi.yaml; work dir ${tmp}`);
  const redis = await startRedis();
  redisPort = redis.port;
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const keys = path.join(tmp, 'keys');
  fs.writeFileSync(keys, `# contract test\n${KEY} contract\n${READ_KEY} name=contract-read role=read\n`);
  const deadPort = await freePort(); // nothing listens there
  const [A, K, D, W, P] = await Promise.all([
    startService('demo', ['--redis', redisUrl, '--demo', '--key-prefix', `contract${process.pid}:`]),
    startService('keys', ['--redis', redisUrl, '--demo', '--api-keys-file', keys, '--key-prefix', `contractk${process.pid}:`]),
    startService('dead-redis', ['--redis', `redis://127.0.0.1:${deadPort}`, '--demo', '--redis-timeout-ms', '300']),
    startService('limits', ['--redis', redisUrl, '--demo', '--max-waiters', '1', '--max-hold-count', '2', '--key-prefix', `contractw${process.pid}:`]),
    startService('no-demo', ['--redis', redisUrl, '--key-prefix', `contractp${process.pid}:`]),
  ]);
  await opsTests(A);
  await Promise.all([lockTests(A).then(() => lockFeatureTests(A)).then(() => sharedLockTests(A)).then(() => demoTests(A)), methodTests(A), semaphoreTests(A), listingTests(A),
    authTests(K).then(() => lockFeatureAuthTests(K)).then(() => semaphoreAuthTests(K)).then(() => listingAuthTests(K)).then(() => shutdownTests(K, BEARER)),
    deadRedisTests(D).then(() => lockFeatureDeadRedisTests(D)).then(() => semaphoreDeadRedisTests(D)).then(() => listingDeadRedisTests(D)),
    limitTests(W).then(() => semaphoreLimitTests(W)), noDemoTests(P), pageTests(A, K, P)]);

  // coverage: every documented (operation, status[, code]) was reached
  for (const e of spec.expectations()) {
    ok(spec.covered.has(e), `covered: ${e}`, 'no test produced a valid response for it');
  }
}

let code = 1;
try {
  await main();
  code = summary();
} catch (e) {
  ok(false, 'contract test ran to the end', e.stack);
  code = summary();
} finally {
  await stopAll();
  if (code === 0) fs.rmSync(tmp, { recursive: true, force: true });
  else diag(`logs kept in ${tmp}`);
}
process.exit(code);
