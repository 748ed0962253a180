// Processes for the tests: a private redis-server and lockservice on free
// loopback ports (never 6379 or 8080), stopped by PID, and a proxy that
// answers one renewal with an HTML 502 the way nginx does.
// LOCKSERVICE_BIN names the service (default: ./lockservice at the
// repository root), REDIS_SERVER the Redis binary (default redis-server).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, openSync, closeSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (port !== 6379 && port !== 8080) return port;
  }
}

export async function waitUntil(ms, cond) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(20);
  }
  return cond();
}

async function status(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

function exited(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once("exit", () => resolve());
  });
}

export class Redis {
  static async start() {
    const r = new Redis();
    r.dir = mkdtempSync(path.join(tmpdir(), "lockservice-tsredis."));
    r.port = await freePort();
    await r.start();
    return r;
  }

  async start() {
    this.proc = spawn(
      process.env.REDIS_SERVER || "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "",
        "--appendonly", "no", "--logfile", path.join(this.dir, "redis.log")],
      { stdio: "ignore" },
    );
    const up = () =>
      new Promise((resolve) => {
        const c = net.connect(this.port, "127.0.0.1");
        c.setTimeout(300);
        c.once("connect", () => c.write("PING\r\n"));
        c.once("data", (d) => { c.destroy(); resolve(d.toString().startsWith("+PONG")); });
        c.once("error", () => resolve(false));
        c.once("timeout", () => { c.destroy(); resolve(false); });
      });
    if (!(await waitUntil(10000, up))) throw new Error("redis-server did not start");
  }

  async kill() {
    if (this.proc) {
      this.proc.kill("SIGKILL");
      await exited(this.proc);
      this.proc = undefined;
    }
  }

  cli(...args) {
    execFileSync("redis-cli", ["-p", String(this.port), ...args], { stdio: "ignore" });
  }

  async close() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Service {
  static async start(redis, extra = []) {
    const s = new Service();
    s.redis = redis;
    s.extra = extra;
    s.port = await freePort();
    s.url = `http://127.0.0.1:${s.port}`;
    s.logDir = mkdtempSync(path.join(tmpdir(), "lockservice-ts."));
    await s.start();
    return s;
  }

  async start() {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LOCKSERVICE_")));
    const log = openSync(path.join(this.logDir, "service.log"), "a");
    this.proc = spawn(
      process.env.LOCKSERVICE_BIN || path.join(ROOT, "lockservice"),
      ["--listen", `127.0.0.1:${this.port}`, "--redis", `redis://127.0.0.1:${this.redis.port}`,
        "--redis-timeout-ms", "300", "--shutdown-timeout-ms", "1000", ...this.extra],
      { stdio: ["ignore", log, log], env },
    );
    closeSync(log);
    if (!(await waitUntil(10000, async () => (await status(`${this.url}/healthz`)) === 200))) {
      throw new Error("lockservice did not start");
    }
  }

  ready() {
    return waitUntil(10000, async () => (await status(`${this.url}/readyz`)) === 200);
  }

  async stop() {
    if (this.proc) {
      const proc = this.proc;
      this.proc = undefined;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15000);
      await exited(proc);
      clearTimeout(timer);
    }
  }

  async close() {
    await this.stop();
    rmSync(this.logDir, { recursive: true, force: true });
  }
}

const BAD_GATEWAY_HTML =
  "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
  "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/** Passes requests on to upstreamPort, except the first renewal, which
 * gets nginx's HTML 502; with cutFirstAcquire, instead the first acquire
 * is passed on (the service grants it) and its connection closed without
 * the answer. */
export class Proxy {
  static async start(upstreamPort, { cutFirstAcquire = false } = {}) {
    const p = new Proxy();
    p.renewals = 0;
    p.badGateway = 0;
    p.acquires = 0;
    p.requestIds = [];
    p.server = http.createServer(async (req, res) => {
      if (req.url.endsWith("/acquire")) {
        const chunks = [];
        for await (const chunk of req) chunks.push(chunk);
        const raw = Buffer.concat(chunks);
        let id;
        try {
          id = JSON.parse(raw.toString()).request_id;
        } catch {
          id = undefined;
        }
        p.requestIds.push(id);
        const cut = cutFirstAcquire && ++p.acquires === 1;
        if (!cutFirstAcquire) p.acquires++;
        const up = http.request(
          { host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
          (upRes) => {
            if (cut) {
              upRes.resume();
              upRes.on("end", () => res.socket?.destroy());
              return;
            }
            res.writeHead(upRes.statusCode, upRes.headers);
            upRes.pipe(res);
          },
        );
        up.on("error", () => res.destroy());
        up.end(raw);
        return;
      }
      if (!cutFirstAcquire && req.url.endsWith("/renew") && ++p.renewals === 1) {
        p.badGateway++;
        req.resume();
        res.writeHead(502, { "Content-Type": "text/html", Server: "nginx", Connection: "close" });
        res.end(BAD_GATEWAY_HTML);
        return;
      }
      const up = http.request(
        { host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (upRes) => {
          res.writeHead(upRes.statusCode, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise((resolve) => p.server.listen(0, "127.0.0.1", resolve));
    p.url = `http://127.0.0.1:${p.server.address().port}`;
    return p;
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(resolve));
  }
}
