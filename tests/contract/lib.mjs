// lib.mjs -- the machinery of the contract test: processes, HTTP, TAP, and
// validation of live responses against openapi.yaml.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;
const YAML = require('yaml');

// ---------------------------------------------------------------- TAP

let passed = 0;
let failed = 0;
export function ok(cond, desc, diag) {
  const n = passed + failed + 1;
  if (cond) {
    passed++;
    console.log(`ok ${n} - ${desc}`);
  } else {
    failed++;
    console.log(`not ok ${n} - ${desc}`);
    for (const line of [].concat(diag || [])) {
      for (const l of String(line).split('\n')) console.log(`#   ${l}`);
    }
  }
  return cond;
}
export function diag(msg) {
  for (const l of String(msg).split('\n')) console.log(`# ${l}`);
}
export function summary() {
  console.log(`1..${passed + failed}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- processes

const children = new Set();
export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lockservice-contract-'));

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => (port === 6379 || port === 8080 ? resolve(freePort()) : resolve(port)));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startProc(name, cmd, args) {
  const log = path.join(tmp, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.name = name;
  child.logFile = log;
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      child.exitCode_ = code;
      child.exitSignal_ = signal;
      resolve({ code, signal });
    });
  });
  child.on('error', (e) => {
    fs.appendFileSync(log, `spawn error: ${e.message}\n`);
  });
  children.add(child);
  return child;
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(500, () => { s.destroy(); resolve(false); });
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) { s.destroy(); resolve(buf.startsWith('+PONG')); }
    });
    s.on('error', () => resolve(false));
  });
}

export async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmp, 'redis-'));
  const bin = process.env.REDIS_SERVER || 'redis-server';
  const child = startProc('redis', bin, ['--port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--dir', dir]);
  for (let i = 0; i < 100; i++) {
    if (await redisPing(port)) return { child, port };
    if (child.exitCode_ !== undefined) break;
    await sleep(50);
  }
  throw new Error(`redis-server did not answer PING on port ${port}; see ${child.logFile}`);
}

// Starts ./lockservice with args and waits for /healthz.
export async function startService(name, args) {
  const port = await freePort();
  const bin = process.env.LOCKSERVICE_BIN;
  const child = startProc(name, bin, ['--listen', `127.0.0.1:${port}`, ...args]);
  const base = { host: '127.0.0.1', port, name, child };
  for (let i = 0; i < 200; i++) {
    if (child.exitCode_ !== undefined) break;
    try {
      const r = await request(base, 'GET', '/healthz');
      if (r.status === 200) return base;
    } catch { /* not up yet */ }
    await sleep(50);
  }
  throw new Error(`${name} did not come up on port ${port}; log ${child.logFile}:\n` +
    (fs.existsSync(child.logFile) ? fs.readFileSync(child.logFile, 'utf8').slice(-2000) : ''));
}

export async function stopAll() {
  const waits = [];
  for (const c of children) {
    c.kill('SIGTERM');
    waits.push(Promise.race([c.exited, sleep(5000).then(() => c.kill('SIGKILL'))]));
  }
  await Promise.all(waits);
}

// ---------------------------------------------------------------- HTTP

// One request on a fresh connection. body: undefined (none), a string or a
// Buffer (sent as is), or anything else (JSON-encoded). Content-Type is
// application/json for a JSON-encoded body unless headers set it; a
// string or Buffer body gets no Content-Type unless headers set one.
export function request(svc, method, urlPath, body, headers = {}, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let payload;
    if (body !== undefined) {
      if (typeof body === 'string' || Buffer.isBuffer(body)) {
        payload = Buffer.from(body);
      } else {
        payload = Buffer.from(JSON.stringify(body));
        if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
          h['Content-Type'] = 'application/json';
        }
      }
      // A test that frames the body itself (Transfer-Encoding, or its own
      // Content-Length) keeps its headers.
      if (!Object.keys(h).some((k) => ['content-length', 'transfer-encoding'].includes(k.toLowerCase()))) {
        h['Content-Length'] = String(payload.length);
      }
    }
    const started = Date.now();
    const req = http.request({ host: svc.host, port: svc.port, method, path: urlPath,
      headers: h, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = raw.length ? JSON.parse(raw) : undefined; } catch { json = undefined; }
        resolve({ method, path: urlPath, status: res.statusCode, headers: res.headers,
          raw, json, ms: Date.now() - started });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

// ---------------------------------------------------------------- the contract

export class Contract {
  constructor(file) {
    this.text = fs.readFileSync(file, 'utf8');
    this.doc = YAML.parse(this.text);
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema(this.doc, 'urn:lockservice:openapi');
    this.validators = new Map();
    this.covered = new Set(); // "OP STATUS" and "OP STATUS code"
    this.ops = new Map(); // "METHOD /template" -> {op, pathItem, template}
    for (const [tpl, item] of Object.entries(this.doc.paths)) {
      for (const m of ['get', 'head', 'put', 'post', 'delete', 'options', 'patch', 'trace']) {
        if (item[m]) this.ops.set(`${m.toUpperCase()} ${tpl}`, { op: item[m], item, tpl, method: m });
      }
    }
    this.fallback = this.doc['x-route-fallback-responses'] || {};
  }

  // JSON pointer helpers
  static esc(s) { return s.replace(/~/g, '~0').replace(/\//g, '~1'); }
  get(ptr) {
    let cur = this.doc;
    for (const p of ptr.replace(/^#\/?/, '').split('/').filter((x) => x !== '')) {
      cur = cur[p.replace(/~1/g, '/').replace(/~0/g, '~')];
      if (cur === undefined) return undefined;
    }
    return cur;
  }
  // Follows a non-schema $ref (response, header, ...): returns [obj, ptr].
  deref(obj, ptr) {
    while (obj && obj.$ref) { ptr = obj.$ref; obj = this.get(ptr); }
    return [obj, ptr];
  }
  validator(ptr) {
    if (!this.validators.has(ptr)) {
      this.validators.set(ptr, this.ajv.getSchema(`urn:lockservice:openapi${ptr}`));
    }
    return this.validators.get(ptr);
  }

  // The problem codes a response schema allows (the operation's enum).
  codesOf(schemaPtr) {
    const codes = new Set();
    const walk = (s, ptr, depth) => {
      if (!s || depth > 10) return;
      if (s.$ref) {
        if (s.$ref === '#/components/schemas/Problem') return; // the global list
        walk(this.get(s.$ref), s.$ref, depth + 1);
      }
      const c = s.properties && s.properties.code;
      if (c) {
        if (c.const !== undefined) codes.add(c.const);
        for (const e of c.enum || []) codes.add(e);
      }
      for (const k of ['allOf', 'oneOf', 'anyOf']) {
        (s[k] || []).forEach((sub, i) => walk(sub, `${ptr}/${k}/${i}`, depth + 1));
      }
    };
    walk(this.get(schemaPtr), schemaPtr, 0);
    return codes;
  }

  // Every (operation, status[, code]) the spec documents, plus the fallbacks.
  expectations() {
    const out = [];
    const add = (key, respObj, respPtr) => {
      const [resp, ptr] = this.deref(respObj, respPtr);
      out.push(key);
      for (const [mt, media] of Object.entries(resp.content || {})) {
        if (!mt.includes('problem') || !media.schema) continue;
        for (const code of this.codesOf(`${ptr}/content/${Contract.esc(mt)}/schema`)) {
          out.push(`${key} ${code}`);
        }
      }
    };
    for (const [key, { op, tpl, method }] of this.ops) {
      for (const [st, resp] of Object.entries(op.responses)) {
        add(`${key} ${st}`, resp, `#/paths/${Contract.esc(tpl)}/${method}/responses/${st}`);
      }
    }
    // The status of a fallback response: its problem schema's status const.
    const fallbackStatus = {
      'unknown-route': 404, 'method-not-allowed': 405, 'bad-framing': 400, 'unsupported-transfer-encoding': 501,
    };
    for (const [name, resp] of Object.entries(this.fallback)) {
      const st = fallbackStatus[name];
      if (st === undefined) throw new Error(`x-route-fallback-responses/${name}: no status known for it`);
      add(`* ${name} ${st}`, resp, `#/x-route-fallback-responses/${name}`);
    }
    return out;
  }

  // Methods the spec documents on a path template.
  methodsOf(tpl) {
    const item = this.doc.paths[tpl];
    return ['get', 'head', 'put', 'post', 'delete', 'options', 'patch']
      .filter((m) => item[m]).map((m) => m.toUpperCase());
  }

  // Validates a live response against operation opKey ("POST /v1/...") or a
  // fallback ("* unknown-route"). Returns a list of problems (empty: valid)
  // and records coverage.
  check(opKey, res) {
    const errs = [];
    let respObj;
    let respPtr;
    if (opKey.startsWith('* ')) {
      const name = opKey.slice(2);
      respPtr = `#/x-route-fallback-responses/${name}`;
      respObj = this.fallback[name];
    } else {
      const entry = this.ops.get(opKey);
      if (!entry) return [`operation ${opKey} is not in openapi.yaml`];
      const { op, tpl, method } = entry;
      const st = String(res.status);
      const key = op.responses[st] ? st : op.responses[`${st[0]}XX`] ? `${st[0]}XX`
        : op.responses.default ? 'default' : null;
      if (!key) {
        return [`status ${res.status} is not documented for ${opKey} ` +
          `(documented: ${Object.keys(op.responses).join(', ')}); body: ${res.raw.slice(0, 300)}`];
      }
      respObj = op.responses[key];
      respPtr = `#/paths/${Contract.esc(tpl)}/${method}/responses/${key}`;
    }
    const [resp, ptr] = this.deref(respObj, respPtr);
    const isHead = res.method === 'HEAD';
    // content type
    const ct = res.headers['content-type'];
    const content = resp.content || {};
    let mediaKey = null;
    if (Object.keys(content).length === 0) {
      if (res.raw.length) errs.push(`no body is documented, got ${res.raw.length} bytes`);
    } else if (!ct) {
      errs.push('no Content-Type header');
    } else {
      const base = ct.split(';')[0].trim().toLowerCase();
      mediaKey = Object.keys(content).find((k) => k.split(';')[0].trim().toLowerCase() === base);
      if (!mediaKey) errs.push(`Content-Type '${ct}' is not documented (${Object.keys(content).join(', ')})`);
    }
    // body
    if (isHead) {
      if (res.raw.length) errs.push(`HEAD response has a body of ${res.raw.length} bytes`);
    } else if (mediaKey && content[mediaKey].schema) {
      const sptr = `${ptr}/content/${Contract.esc(mediaKey)}/schema`;
      let value = res.raw;
      if (/json/.test(mediaKey)) {
        if (res.json === undefined) errs.push(`body is not JSON: ${res.raw.slice(0, 200)}`);
        value = res.json;
      }
      if (value !== undefined) {
        const v = this.validator(sptr);
        if (!v(value)) {
          errs.push(`body does not match ${sptr}: ${this.ajv.errorsText(v.errors, { separator: '; ' })}`);
          errs.push(`body: ${res.raw.slice(0, 400)}`);
        }
      }
      if (mediaKey.includes('problem') && res.json && res.json.status !== res.status) {
        errs.push(`problem status ${res.json.status} differs from HTTP status ${res.status}`);
      }
    }
    // headers
    for (const [hname, hObj] of Object.entries(resp.headers || {})) {
      const [h, hptr] = this.deref(hObj, `${ptr}/headers/${hname}`);
      const val = res.headers[hname.toLowerCase()];
      if (val === undefined) {
        if (h.required) errs.push(`required header ${hname} is missing`);
        continue;
      }
      let v = val;
      if (h.schema && h.schema.type === 'integer') v = /^-?\d+$/.test(val) ? Number(val) : val;
      const hv = this.validator(`${hptr}/schema`);
      if (hv && !hv(v)) errs.push(`header ${hname}: '${val}' ${this.ajv.errorsText(hv.errors)}`);
    }
    // lock_held carries Retry-After = ceil(retry_after_ms / 1000), at least 1
    if (!isHead && res.json && res.json.code === 'lock_held') {
      const want = Math.max(1, Math.ceil(res.json.retry_after_ms / 1000));
      const got = res.headers['retry-after'];
      if (got === undefined) errs.push('lock_held without a Retry-After header');
      else if (Number(got) !== want) {
        // the TTL may cross a second boundary between the two readings
        if (Math.abs(Number(got) - want) > 1) errs.push(`Retry-After ${got}, want ${want} (retry_after_ms ${res.json.retry_after_ms})`);
      }
    }
    if (errs.length === 0) {
      const stKey = opKey.startsWith('* ') ? `${opKey} ${res.status}` : `${opKey} ${this.statusKey(opKey, res.status)}`;
      this.covered.add(stKey);
      if (res.json && typeof res.json.code === 'string' && !isHead) this.covered.add(`${stKey} ${res.json.code}`);
    }
    return errs;
  }
  statusKey(opKey, status) {
    const { op } = this.ops.get(opKey);
    const st = String(status);
    return op.responses[st] ? st : op.responses[`${st[0]}XX`] ? `${st[0]}XX` : 'default';
  }
}
