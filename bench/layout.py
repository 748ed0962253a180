#!/usr/bin/env python3
"""layout.py -- the Redis commands the binary under test sends, as templates
for the baselines that replay them without the service (bench/run, issue 9).

    layout.py --src DIR --redis-port P --service-url URL --out DIR [--minimal DIR]

The baselines "raw Redis running our scripts" and "webdis running our
scripts" must do the Redis work the service does, with the scripts the
binary under test really loads. Those change with the engine (version 1:
service/lua/{acquire,release}.lua; version 2: service/lock/lua/ with a
shared prelude, keys under a {name} hash tag), so this file:

 1. finds the script files of the source tree of the binary (--src; version
    2's folder preferred when present) and their SHA1s;
 2. probes the running service: one acquire and one release of a probe lock
    while a MONITOR connection records the EVALSHA (or EVAL) each sends,
    and the keys of the probe name that exist after each;
 3. builds the arguments with the function of the layout found
    (args_v1 / args_v2 below: one per layout, the place to adapt), checks
    them against the recorded calls and checks the SHA1 against the files;
 4. replays the templates once through webdis (--webdis-port) and checks
    that they leave the same keys as the service's own calls did.

It writes, into --out: ours.acquire and ours.release (one argument per
line, "@NAME@" for the lock name: for bench/tools/redis_pairs and pace),
ours.acquire.path and ours.release.path (the same as webdis URL paths),
the same four files for the minimal scripts (min.*), and internal.txt (the
Redis commands the service's scripts and the minimal ones call,
comma-separated: those are not round trips). It prints "BENCH key=value" lines: layout, ours (ok, or
"skipped, <why>"), scripts (the files whose SHA1 the service uses).
Nothing here guesses: when a layout's calls cannot be confirmed, the
"our scripts" baselines are skipped and the reason printed.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import socket
import sys
import time
import urllib.parse
import urllib.request

# Probe lock names, unique per run, none a part of another (keys are found by
# SCAN MATCH *name*).
PROBE = f"bprobe{os.getpid()}x"
WARM = f"bwarm{os.getpid()}x"
CHECK = f"bcheck{os.getpid()}x"
TOKEN = "0123456789abcdef0123456789abcdef"  # same length as the service's
OWNER = "1732600000000000"  # like the owner labels bench/*.lua send


# ---- a small RESP client ----------------------------------------------------
class Redis:
    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode("latin-1")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def cmd(self, *args):
        self.send(*args)
        return self.reply()


# MONITOR lines: 1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "ab" "4" ...
MON_RE = re.compile(r'^[\d.]+ \[\d+ ([^\]]+)\] (.*)$')
ARG_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
ESC = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def unescape(s):
    return re.sub(r'\\(x[0-9a-fA-F]{2}|.)',
                  lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x"
                  and len(m.group(1)) == 3 else ESC.get(m.group(1), m.group(1)), s)


def http(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def name_keys(r, name):
    """{key with the name replaced by NAME: redis type} for keys holding name."""
    out, cursor = {}, "0"
    while True:
        cursor, keys = r.cmd("SCAN", cursor, "MATCH", f"*{name}*", "COUNT", 1000)
        for k in keys:
            out[k.replace(name, "NAME")] = r.cmd("TYPE", k)
        if cursor == "0":
            return out


def probe(svc, redis_port):
    """Acquire + release of PROBE on the service while MONITOR records.

    Returns {"acquire": [cmd, sha, numkeys, ...], "release": [...],
    "after_acquire": keys, "after_release": keys, "token": token}."""
    r = Redis(redis_port)
    # A warm-up pair first, so the scripts are cached and no NOSCRIPT
    # fallback shows in the recorded calls.
    st, body = http(f"{svc}/v1/locks/{WARM}/acquire", "POST", {"ttl_ms": 30000})
    if st == 200:
        http(f"{svc}/v1/locks/{WARM}/release", "POST",
             {"token": json.loads(body)["token"]})
    mon = Redis(redis_port)
    if mon.cmd("MONITOR") != "OK":
        raise RuntimeError("MONITOR refused")
    out = {}

    def record(op):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            m = MON_RE.match(mon._line().decode("latin-1").lstrip("+"))
            if not m or m.group(1) == "lua":
                continue
            args = [unescape(a) for a in ARG_RE.findall(m.group(2))]
            if args and args[0].upper() in ("EVALSHA", "EVAL") and \
                    any(PROBE in a for a in args):
                out[op] = args
                return
        raise RuntimeError(f"no EVALSHA/EVAL naming {PROBE} seen for {op}")

    st, body = http(f"{svc}/v1/locks/{PROBE}/acquire", "POST",
                    {"ttl_ms": 30000, "owner": OWNER})
    if st != 200:
        raise RuntimeError(f"probe acquire answered {st}: {body[:200]}")
    out["token"] = json.loads(body)["token"]
    record("acquire")
    out["after_acquire"] = name_keys(r, PROBE)
    st, body = http(f"{svc}/v1/locks/{PROBE}/release", "POST", {"token": out["token"]})
    if st != 200:
        raise RuntimeError(f"probe release answered {st}: {body[:200]}")
    record("release")
    out["after_release"] = name_keys(r, PROBE)
    mon.s.close()
    return out


# ---- layouts: how the binary under test calls its scripts ------------------
# Each function returns the EVALSHA arguments after the SHA1 (numkeys, keys,
# ARGV) of operation op ("acquire" or "release") on lock `name` with lease
# token `token` and owner label `owner`; `seen` is the probe's recorded call
# of the same operation (argv from "EVALSHA" on), for values that come from
# the service's configuration. bench/run replays the result without the
# service, so a layout's function must match what the service sends: main()
# checks it against the recorded call and skips the baseline when it does not.

def args_v1(op, name, token, owner, seen, prefix="lockservice:"):
    """Version 1: service/lua/acquire.lua and release.lua (see their headers
    and service/lock_engine.c)."""
    k = {t: f"{prefix}{t}:{name}" for t in ("lock", "fence", "waitq", "handoff")}
    if op == "acquire":
        # KEYS lock, fence, waiter set, handoff; ARGV token, reentry flag,
        # ttl_ms, owner, wait_ms, max hold count (--max-hold-count), ticket,
        # waiter id
        return ["4", k["lock"], k["fence"], k["waitq"], k["handoff"],
                token, "0", "30000", owner, "0", seen[12], "", ""]
    # KEYS lock, waiter set, handoff; ARGV token, release channel (from the
    # key prefix), lock name, hand-off window (--handoff-ms)
    return ["3", k["lock"], k["waitq"], k["handoff"], token, seen[7], name, seen[9]]


def args_v2(op, name, token, owner, seen, prefix="lockservice:"):
    """Version 2: service/lock/lua/ (DESIGN.md section 3), every key of a
    name under the hash tag {name}. The keys a script takes are the recorded
    call's, each of which must be one of those below for the probe name;
    ARGV is the recorded call's with the probe's name, token and owner put
    back as parameters."""
    keys = {f"{prefix}{{{PROBE}}}:{t}": f"{prefix}{{{name}}}:{t}"
            for t in ("lock", "fence", "queue", "waiters", "delay", "acq:-",
                      "rel:-", "shared", "shared:expiry")}
    nkeys = int(seen[2])
    rec_keys, rec_argv = seen[3:3 + nkeys], seen[3 + nkeys:]
    if any(k not in keys for k in rec_keys):
        raise LookupError(f"{op} keys {rec_keys} are not {sorted(keys)}")
    argv = [a.replace(seen_token[0], token).replace(OWNER, owner).replace(PROBE, name)
            for a in rec_argv]
    return [str(nkeys)] + [keys[k] for k in rec_keys] + argv


seen_token = [""]  # the probe lease's token, for args_v2

LAYOUTS = {
    # name: (script folder, files, arguments function)
    "v2": ("service/lock/lua", ("acquire.lua", "release.lua"), args_v2),
    "v1": ("service/lua", ("acquire.lua", "release.lua"), args_v1),
}


def detect(src):
    """(layout, folder) of the first layout whose scripts exist under src."""
    for name in ("v2", "v1"):
        folder, files, _ = LAYOUTS[name]
        if all(os.path.isfile(os.path.join(src, folder, f)) for f in files):
            return name, folder
    return None, None


def script_candidates(src, folder, fname):
    """{sha1: (description, text)} of the texts the binary may load for
    fname: the file itself, or a prelude (another *prelude*.lua or _*.lua in
    the folder) put in front of it, or after its "#!" line (version 2's
    service/lock/kinds.c does the latter, with base.lua, when the folder has
    one, in front of the prelude)."""
    text = open(os.path.join(src, folder, fname), "rb").read()
    out = {hashlib.sha1(text).hexdigest(): (f"{folder}/{fname}", text)}
    head, rest = b"", text
    if text.startswith(b"#!"):
        head, _, rest = text.partition(b"\n")
        head += b"\n"
    common = os.path.join(src, folder, "base.lua")
    common = open(common, "rb").read() if os.path.isfile(common) else b""
    for pre in sorted(glob.glob(os.path.join(src, folder, "*.lua"))):
        base = os.path.basename(pre)
        if base == fname or not ("prelude" in base or base.startswith("_")):
            continue
        p = open(pre, "rb").read()
        for t in (p + text, p + b"\n" + text, head + p + rest,
                  head + common + p + rest):
            out[hashlib.sha1(t).hexdigest()] = (f"{folder}/{base} + {fname}", t)
    return out


def internal_commands(r, files):
    """Redis commands the Lua files name (as quoted words): those run inside
    EVALSHA and are no round trips."""
    names = set(n.lower() for n in r.cmd("COMMAND", "LIST"))
    words = set()
    for f in files:
        for w in re.findall(r'["\']([A-Za-z]+)["\']', open(f).read()):
            if w.lower() in names:
                words.add(w.lower())
    return sorted(words)


def webdis_path(argv):
    """A webdis URL path for argv, "@NAME@" kept as it is."""
    enc = [urllib.parse.quote(a, safe="").replace(".", "%2E")
           .replace("%40NAME%40", "@NAME@") for a in argv]
    return "/" + "/".join(enc)


def write_template(out, stem, argv):
    with open(os.path.join(out, stem), "w") as f:
        f.write("".join(a + "\n" for a in argv))
    with open(os.path.join(out, stem + ".path"), "w") as f:
        f.write(webdis_path(argv) + "\n")


def webdis_check(port, r, acq, rel, expect):
    """Runs the templates once through webdis (r: a connection to the
    database webdis uses); '' when they leave the keys the service's own
    calls left, else what differs."""
    name = CHECK
    base = f"http://127.0.0.1:{port}"
    for op, tpl, want in (("acquire", acq, expect["after_acquire"]),
                          ("release", rel, expect["after_release"])):
        st, body = http(base + webdis_path(tpl).replace("@NAME@", name))
        if st != 200 or "[false," in body:
            return f"webdis {op} answered {st}: {body[:200]}"
        got = name_keys(r, name)
        if got != want:
            return f"after webdis {op} keys {got}, after the service's {want}"
    return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--service-url", required=True)
    ap.add_argument("--webdis-port", type=int)
    ap.add_argument("--webdis-db", type=int, default=0)
    ap.add_argument("--minimal", required=True, help="folder of the minimal scripts")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    r = Redis(a.redis_port)

    # The minimal scripts (issue 9's raw Redis and webdis floor).
    ma = r.cmd("SCRIPT", "LOAD", open(os.path.join(a.minimal, "acquire.lua")).read())
    mr = r.cmd("SCRIPT", "LOAD", open(os.path.join(a.minimal, "release.lua")).read())
    mk = "lockservice-bench:{@NAME@}"
    write_template(a.out, "min.acquire",
                   ["EVALSHA", ma, "2", mk + ":lock", mk + ":fence", TOKEN, "30000"])
    write_template(a.out, "min.release", ["EVALSHA", mr, "1", mk + ":lock", TOKEN])

    layout, folder = detect(a.src)
    print(f"BENCH layout={layout or 'unknown'}")
    files = sorted(glob.glob(os.path.join(a.src, folder, "*.lua"))) if folder else []
    files += sorted(glob.glob(os.path.join(a.minimal, "*.lua")))
    with open(os.path.join(a.out, "internal.txt"), "w") as f:
        f.write(",".join(internal_commands(r, files)) + "\n")
    if layout is None:
        print("BENCH ours=skipped, layout unknown (no service/lock/lua/ nor "
              f"service/lua/ acquire.lua and release.lua under {a.src})")
        return 0

    try:
        seen = probe(a.service_url, a.redis_port)
    except (OSError, RuntimeError) as e:
        print(f"BENCH ours=skipped, layout unknown (probe failed: {e})")
        return 0
    seen_token[0] = seen["token"]
    args_fn = LAYOUTS[layout][2]
    tpls, used = {}, []
    for op in ("acquire", "release"):
        rec = seen[op]
        try:
            mine = args_fn(op, PROBE, seen["token"], OWNER, rec)
        except (LookupError, IndexError) as e:
            print(f"BENCH ours=skipped, layout unknown ({layout} {op}: {e})")
            return 0
        if rec[0].upper() != "EVALSHA":
            print(f"BENCH ours=skipped, layout unknown (the service sends {op} as {rec[0]})")
            return 0
        if mine != rec[2:]:
            print(f"BENCH ours=skipped, layout unknown (args_{layout} {op} gives "
                  f"{mine}, the service sent {rec[2:]})")
            return 0
        cands = script_candidates(a.src, folder, LAYOUTS[layout][1][0 if op == "acquire" else 1])
        sha = rec[1]
        if sha in cands:
            used.append(cands[sha][0])
            r.cmd("SCRIPT", "LOAD", cands[sha][1])  # the file, as the service loads it
        elif r.cmd("SCRIPT", "EXISTS", sha) == [1]:
            used.append(f"the service's cached {op} script (no file of {folder} has SHA1 {sha[:12]})")
        else:
            print(f"BENCH ours=skipped, layout unknown ({op} script {sha[:12]} not found)")
            return 0
        tpls[op] = ["EVALSHA", sha] + args_fn(op, "@NAME@", TOKEN, OWNER, rec)
    if a.webdis_port:
        rw = Redis(a.redis_port)
        rw.cmd("SELECT", a.webdis_db)
        why = webdis_check(a.webdis_port, rw, tpls["acquire"], tpls["release"], seen)
        if why:
            print(f"BENCH ours=skipped, layout unknown ({why})")
            return 0
    for op in ("acquire", "release"):
        write_template(a.out, "ours." + op, tpls[op])
    print(f"BENCH scripts={'; '.join(used)}")
    print("BENCH ours=ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
