#!/usr/bin/env python3
"""The stead load benchmark; `bench/run` builds and then calls this.

Provisions the data, times the imports, measures bare signing rates, starts
the release server pinned to core 0, drives it with wrk pinned to core 1,
checks that every answer was a 200 carrying a token (and introspects a sample
of the tokens), and prints a table that it also writes to
bench/results/latest.md (raw wrk output in bench/results/latest-raw.txt).
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
DATA = os.path.join(BENCH, "data")
RESULTS = os.path.join(BENCH, "results")
STEAD = os.environ.get("STEAD_BIN") or os.path.join(ROOT, "target", "release", "stead")
LUA = os.path.join(BENCH, "token.lua")

sys.path.insert(0, BENCH)
sys.dont_write_bytecode = True
import gen_provisioning as gen  # noqa: E402

SERVER_CORE = "0"
LOAD_CORE = "1"

# Targets of the performance issue.
TARGET_TPS = 25_000
TARGET_P99_MS = 3.0
TARGET_IMPORT_S = 10.0
TARGET_READY_MS = 200.0
TARGET_RSS_MB = 64.0


class Scenario:
    def __init__(self, name, db, tenant, realm, subject, alg, expect=200, check=True, label=None):
        self.name, self.db, self.tenant, self.realm, self.subject = name, db, tenant, realm, subject
        self.alg, self.expect, self.check = alg, expect, check
        self.label = label or name


SCENARIOS = [
    Scenario("es256_username", "small", "BENCH_ES256", "U", "username", "ES256", label="ES256, subject_username, 1k users"),
    Scenario("es256_userid", "small", "BENCH_ES256", "U", "userid", "ES256", label="ES256, subject_userid, 1k users"),
    Scenario("es256_customer", "small", "BENCH_ES256", "C", "email", "ES256", label="ES256, customer realm (subject_email), 1k customers"),
    Scenario("eddsa_username", "small", "BENCH_EDDSA", "U", "username", "EdDSA", label="EdDSA, subject_username, 1k users"),
    Scenario("rs256_username", "small", "BENCH_RS256", "U", "username", "RS256", label="RS256, subject_username, 1k users"),
    Scenario("es256_username_nocheck", "small", "BENCH_ES256", "U", "username", "ES256", check=False,
             label="ES256, subject_username, wrk without response() callback"),
    Scenario("floor_404", "small", "NO_SUCH_TENANT", "U", "username", None, expect=404,
             label="HTTP floor: unknown tenant, 404 (no token)"),
    Scenario("es256_username_loginfo", "small-loginfo", "BENCH_ES256", "U", "username", "ES256",
             label="ES256, subject_username, server at the default --log-level info"),
    Scenario("es256_username_1m", "large", "BENCH_ES256", "U", "username", "ES256", label="ES256, subject_username, 1M users"),
    Scenario("es256_userid_1m", "large", "BENCH_ES256", "U", "userid", "ES256", label="ES256, subject_userid, 1M users"),
]


# Server phases: data directory, subjects the load draws from, log level.
PHASES = {"small": ("db-small", 1000, "warn"), "small-loginfo": ("db-small", 1000, "info"),
          "large": ("db-large", None, "warn")}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, text=True, capture_output=True).stdout.strip()
    except Exception:
        return ""


# ---------------------------------------------------------------- machine

def machine_info():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mhz": sh("grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2").strip(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": sh("rustc --version"),
        "wrk": sh("wrk -v 2>&1 | head -1"),
        "git": sh(f"git -C {ROOT} rev-parse --short HEAD"),
        "dirty": sh(f"git -C {ROOT} status --porcelain | wc -l"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def busy_builds():
    out = sh("pgrep -a -x cargo; pgrep -a -x rustc")
    return [l for l in out.splitlines() if l.strip()]


# ---------------------------------------------------------------- data

def provisioning_file(name, users, customers):
    path = os.path.join(DATA, f"{name}-{users}u-{customers}c.toml")
    gen_mtime = os.path.getmtime(os.path.join(BENCH, "gen_provisioning.py"))
    if not os.path.exists(path) or os.path.getmtime(path) < gen_mtime:
        log(f"writing {os.path.relpath(path, ROOT)}")
        with open(path + ".tmp", "w", encoding="utf-8", buffering=1 << 20) as f:
            gen.write(f, users, customers, 1000)
        os.replace(path + ".tmp", path)
    return path


def import_file(path, data_dir):
    shutil.rmtree(data_dir, ignore_errors=True)
    os.makedirs(data_dir)
    started = time.monotonic()
    out = run([STEAD, "import", path, "--data-dir", data_dir], capture_output=True)
    elapsed = time.monotonic() - started
    log(f"  {out.stdout.strip()} in {elapsed:.2f} s")
    return elapsed


# ---------------------------------------------------------------- sign limit

def sign_limits(measure_s):
    """Bare signing rate per algorithm on one core: criterion's sign_raw group."""
    cmd = ["taskset", "-c", SERVER_CORE, "cargo", "bench", "-q", "-p", "stead-core", "--bench", "hot_path", "--",
           "sign_raw/", "--warm-up-time", "1", "--measurement-time", str(measure_s), "--noplot"]
    log("bare signing rates: " + " ".join(cmd[3:]))
    try:
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        log("  criterion bench failed; no signing limits\n" + (e.stderr or "")[-2000:])
        return {}
    limits = {}
    for alg in ("ES256", "EdDSA", "RS256"):
        est = os.path.join(ROOT, "target", "criterion", "sign_raw", alg, "new", "estimates.json")
        try:
            ns = json.load(open(est))["mean"]["point_estimate"]
            limits[alg] = {"ns": ns, "per_s": 1e9 / ns}
            log(f"  {alg}: {ns / 1000:.1f} µs → {1e9 / ns:,.0f}/s")
        except (OSError, KeyError, ValueError):
            pass
    return limits


# ---------------------------------------------------------------- server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path="/readyz"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        m = re.match(rb"HTTP/1\.1 (\d{3})", head)
        return int(m.group(1)) if m else None
    except OSError:
        return None


class Server:
    def __init__(self, data_dir, log_path, log_level="warn"):
        self.data_dir, self.log_path, self.log_level = data_dir, log_path, log_level
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        """Starts the server on core 0; returns milliseconds from exec to /readyz 200."""
        cmd = ["taskset", "-c", SERVER_CORE, STEAD, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", self.data_dir, "--log-level", self.log_level]
        logf = open(self.log_path, "a")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.log_path}")
            if http_status(self.port) == 200:
                return (time.monotonic() - started) * 1000
            if time.monotonic() - started > 60:
                raise SystemExit("server not ready after 60 s")
            time.sleep(0.001)

    def wait_indexed(self, limit_s=300):
        """Waits until the idle server has indexed the audit records of the
        previous runs (none left in audit_recent); returns the seconds waited.
        Each measured run then starts from the same state; bench/sustained
        measures what happens when load does not pause."""
        started = time.monotonic()
        db = os.path.join(self.data_dir, "stead-audit.db")
        while time.monotonic() - started < limit_s:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                left = con.execute("SELECT count(*) FROM audit_recent").fetchone()[0]
            finally:
                con.close()
            if left == 0:
                break
            time.sleep(0.2)
        return time.monotonic() - started

    def memory(self):
        status = open(f"/proc/{self.proc.pid}/status").read()
        get = lambda k: int(re.search(rf"{k}:\s+(\d+) kB", status).group(1)) / 1024  # noqa: E731
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
        return {"rss_mb": get("VmRSS"), "hwm_mb": get("VmHWM"), "threads": threads}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------- load

def cpu_seconds(pid):
    """User + system CPU time of a process, all its threads, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(server, sc, n_subjects, duration, connections, raw, sample=None, seed=1):
    url = f"{server.base}/system/auth/{sc.tenant}-{sc.realm}/oauth2/token"
    args = [f"client={gen.CLIENT_ID}", f"secret={gen.SECRET}", f"scope={gen.SCOPE}", f"subject={sc.subject}",
            f"n={n_subjects}", f"expect={sc.expect}", f"seed={seed}"]
    if sample:
        args += [f"sample={sample}", "sample_every=2000"]
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           "-s", LUA, url, "--"] + args
    env = dict(os.environ, STEAD_BENCH_CHECK="1" if sc.check else "0")
    cpu_before = cpu_seconds(server.proc.pid)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    noisy = busy_builds()
    raw.write(f"\n=== {sc.name}: {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    m = re.search(r"^STEAD_RESULT (.*)$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise SystemExit(f"wrk failed for {sc.name}:\n{out.stdout}\n{out.stderr}")
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["tps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["socket_errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    # The server's CPU: how busy its core was, and what one fully busy core
    # would serve (robust to other processes taking the core now and then).
    r["server_cpu"] = cpu / (r["duration_us"] / 1e6)
    r["per_cpu_s"] = r["requests"] / cpu if cpu > 0 else 0.0
    # A build that was running when the run ended shared the machine with it.
    r["noisy"] = bool(noisy)
    return r


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def verify_sample(server, sc, path, limit=5):
    """Introspects up to `limit` sampled tokens; returns (verified, checked)."""
    try:
        tokens = [t for t in open(path).read().split() if t][:limit]
    except OSError:
        return 0, 0
    url = f"{server.base}/system/auth/{sc.tenant}-{sc.realm}/oauth2/introspect"
    ok = 0
    for token in tokens:
        header = b64json(token.split(".")[0])
        body = urllib.parse.urlencode({"client_id": gen.CLIENT_ID, "client_secret": gen.SECRET, "token": token})
        req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
        try:
            answer = json.load(urllib.request.urlopen(req, timeout=5))
        except (urllib.error.URLError, ValueError):
            continue
        want_type = "user" if sc.realm == "U" else "customer"
        if (header.get("alg") == sc.alg and header.get("typ") == "at+jwt" and answer.get("active") is True
                and answer.get("subject_type") == want_type and answer.get("client_id") == gen.CLIENT_ID):
            ok += 1
    return ok, len(tokens)


def profile(server, sc, n_subjects, opts, raw):
    """perf record (DWARF call graphs) of the server during one wrk run of `sc`;
    writes flat (self) and inclusive (children) reports to bench/results/."""
    data = os.path.join(RESULTS, f"perf-{sc.name}.data")
    perf = subprocess.Popen(["taskset", "-c", LOAD_CORE, "perf", "record", "-F", "997", "--call-graph",
                             "dwarf,16384", "-p", str(server.proc.pid), "-o", data, "--", "sleep",
                             str(opts.duration)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    r = wrk(server, sc, n_subjects, opts.duration, opts.connections, raw)
    _, err = perf.communicate()
    if perf.returncode != 0:
        log(f"perf record failed: {err.strip()[-500:]}")
        return
    log(f"[profile] {sc.name} under perf: {r['tps']:,.0f}/s")
    reports = (("self", ["--no-children", "--sort", "symbol"]), ("children", ["--children", "--sort", "symbol"]),
               ("threads", ["--no-children", "--sort", "comm"]), ("dso", ["--no-children", "--sort", "dso"]))
    for kind, flags in reports:
        out = os.path.join(RESULTS, f"profile-{sc.name}-{kind}.txt")
        rep = subprocess.run(["taskset", "-c", LOAD_CORE, "perf", "report", "-i", data, "--stdio", "-g", "none",
                              "--percent-limit", "0.3"] + flags, capture_output=True, text=True)
        with open(out, "w") as f:
            f.write(f"# {sc.name}, {r['tps']:,.0f}/s under perf; perf report {' '.join(flags)}\n")
            for line in rep.stdout.splitlines():
                if line.strip() and not line.startswith("#"):
                    f.write(re.sub(r"\s{3,}", "  ", line).rstrip(" -") + "\n")
        log(f"[profile] {os.path.relpath(out, ROOT)}")
    out = os.path.join(RESULTS, f"profile-{sc.name}-breakdown.md")
    rep = subprocess.run(["taskset", "-c", LOAD_CORE, sys.executable, os.path.join(BENCH, "perf_breakdown.py"), data,
                          "--tokens", str(round(r["tps"] * opts.duration))], capture_output=True, text=True)
    with open(out, "w") as f:
        f.write(f"# {sc.label}: {r['tps']:,.0f}/s under perf, server CPU {r['server_cpu']:.0%}\n\n{rep.stdout}")
    log(f"[profile] {os.path.relpath(out, ROOT)}\n{rep.stdout}{rep.stderr[-500:]}")


def run_phase(db, data_dir, scenarios, n_subjects, opts, raw, results, extra):
    server = Server(data_dir, os.path.join(RESULTS, f"server-{db}.log"), PHASES[db][2])
    open(server.log_path, "w").close()
    try:
        first = server.start()
        server.stop()
        ready = server.start()
        log(f"[{db}] ready in {first:.0f} ms on first start (creates signing keys), {ready:.0f} ms on restart")
        extra[f"ready_first_ms_{db}"] = first
        extra[f"ready_ms_{db}"] = ready
        # Warm-up: connections, caches, the audit table's first pages.
        warm = next(s for s in scenarios if s.expect == 200)
        wrk(server, warm, n_subjects, opts.warmup, opts.connections, raw)
        runs = {s.name: [] for s in scenarios}
        for round_no in range(opts.repeat):
            for sc in scenarios:
                sample = os.path.join(RESULTS, f"tokens-{sc.name}.txt")
                if os.path.exists(sample):
                    os.remove(sample)
                waited = server.wait_indexed()
                if waited > 0.5:
                    log(f"[{db}] waited {waited:.1f} s for the idle server to index the audit backlog")
                r = wrk(server, sc, n_subjects, opts.duration, opts.connections, raw,
                        sample=sample if sc.check and sc.expect == 200 else None, seed=round_no + 1)
                if sc.check and sc.expect == 200:
                    r["verified"], r["sampled"] = verify_sample(server, sc, sample)
                runs[sc.name].append(r)
                log(f"[{db}] {sc.name:24} {r['tps']:>9,.0f}/s  p50 {r['p50_us'] / 1000:.2f} ms  "
                    f"p99 {r['p99_us'] / 1000:.2f} ms  bad status {r['bad_status']}  bad body {r['bad_body']}"
                    f"  socket errors {r['socket_errors']}  server CPU {r['server_cpu']:.0%}"
                    f" → {r['per_cpu_s']:,.0f}/CPU-s" + ("  [builds running]" if r["noisy"] else ""))
        mem = server.memory()
        extra[f"memory_{db}"] = mem
        for sc in scenarios:
            if sc.name in (opts.profile or "").split(","):
                profile(server, sc, n_subjects, opts, raw)
        log(f"[{db}] server RSS {mem['rss_mb']:.1f} MB, peak {mem['hwm_mb']:.1f} MB, {mem['threads']} threads")
        for name, rs in runs.items():
            # The run with the median (or best) throughput stands for the scenario.
            all_tps = [round(r["tps"]) for r in rs]
            rs.sort(key=lambda r: r["tps"])
            pick = rs[-1] if opts.pick == "best" else rs[len(rs) // 2]
            results[name] = dict(pick, all_tps=all_tps)
    finally:
        server.stop()


# ---------------------------------------------------------------- report

def fmt_int(x):
    return f"{x:,.0f}"


def verdicts(res, extra, limits):
    v = []

    def add(target, measured, ok):
        v.append((target, measured, "meets" if ok else "**misses**" if ok is False else "n/a"))

    g = res.get
    if g("es256_username"):
        r = res["es256_username"]
        add(f"ES256 ≥ {TARGET_TPS:,} tokens/s on one core", f"{fmt_int(r['tps'])}/s", r["tps"] >= TARGET_TPS)
        add(f"p99 ≤ {TARGET_P99_MS} ms at 32 connections", f"{r['p99_us'] / 1000:.2f} ms",
            r["p99_us"] / 1000 <= TARGET_P99_MS)
    token_runs = [r for k, r in res.items() if k != "floor_404"]
    if token_runs:
        bad = sum((r["bad_status"] if r["check"] else r["status_ge400"]) + r["bad_body"] + r["socket_errors"]
                  for r in token_runs)
        unchecked = [k for k, r in res.items() if k != "floor_404" and not r["check"]]
        add("zero non-200 responses (all token scenarios)", f"{bad} bad"
            + (f" ({', '.join(unchecked)}: status only)" if unchecked else ""), bad == 0)
    for a, b, what in (("es256_userid", "es256_username", "subject_userid within 5% of subject_username"),
                       ("es256_userid_1m", "es256_username_1m", "… the same with 1M users"),
                       ("es256_customer", "es256_username", "customer realm within 5% of user realm")):
        if g(a) and g(b):
            d = res[a]["tps"] / res[b]["tps"] - 1
            add(what, f"{d:+.1%}", abs(d) <= 0.05)
    if g("es256_username_1m") and g("es256_username"):
        d = res["es256_username_1m"]["tps"] / res["es256_username"]["tps"] - 1
        add("1M users within 10% of 1k users", f"{d:+.1%}", d >= -0.10)
    if "memory_large" in extra:
        m = extra["memory_large"]
        add(f"server RSS < {TARGET_RSS_MB:.0f} MB with 1M users", f"{m['rss_mb']:.1f} MB (peak {m['hwm_mb']:.1f})",
            m["hwm_mb"] < TARGET_RSS_MB)
    if g("eddsa_username") and g("es256_username"):
        d = res["eddsa_username"]["tps"] / res["es256_username"]["tps"] - 1
        add("EdDSA faster than ES256", f"{d:+.1%}", d > 0)
    if g("rs256_username"):
        lim = limits.get("RS256")
        if lim:
            frac = res["rs256_username"]["tps"] / lim["per_s"]
            add("RS256 within 20% of its bare signing limit",
                f"{fmt_int(res['rs256_username']['tps'])}/s = {frac:.0%} of {fmt_int(lim['per_s'])}/s", frac >= 0.8)
        else:
            add("RS256 within 20% of its bare signing limit", "no signing limit measured", None)
    if "import_large_s" in extra:
        add(f"1M-user file imported in < {TARGET_IMPORT_S:.0f} s", f"{extra['import_large_s']:.2f} s",
            extra["import_large_s"] < TARGET_IMPORT_S)
    if "ready_ms_large" in extra:
        add(f"start to ready < {TARGET_READY_MS:.0f} ms with 1M users",
            f"{extra['ready_ms_large']:.0f} ms (first start {extra['ready_first_ms_large']:.0f} ms)",
            extra["ready_ms_large"] < TARGET_READY_MS)
    return v


def report(machine, opts, res, extra, limits):
    lines = [f"# stead load benchmark — {machine['date']}", ""]
    lines.append(f"Machine: {machine['nproc']} cores ({machine['cpu']}, {machine['mhz']} MHz), "
                 f"{machine['memory_gib']} GiB, Linux {machine['kernel']}; {machine['rustc']}; {machine['wrk']}; "
                 f"commit {machine['git']}" + (f" + {machine['dirty']} uncommitted files" if machine["dirty"] not in
                                                ("", "0") else "") + ".")
    lines.append(f"Server pinned to core {SERVER_CORE}, wrk (1 thread, {opts.connections} connections, "
                 f"{opts.duration} s per run, {opts.repeat} run(s), {opts.pick} shown) pinned to core {LOAD_CORE}. "
                 "Release build, SQLite, audit on.")
    lines.append("")
    lines.append("| scenario | tokens/s | server CPU | per CPU-second | p50 ms | p99 ms | p99.9 ms | non-200 | bad bodies "
                 "| socket errors | tokens introspected |")
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for sc in SCENARIOS:
        r = res.get(sc.name)
        if not r:
            continue
        non200 = r["bad_status"] if r["check"] else r["status_ge400"]
        lines.append(
            f"| {sc.label}{' ⚠' if r.get('noisy') else ''} | {fmt_int(r['tps'])} | {r['server_cpu']:.0%} | "
            f"{fmt_int(r['per_cpu_s'])} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
            f"{r['p999_us'] / 1000:.2f} | {non200 if r['check'] or sc.expect == 200 else '—'}"
            f"{'' if r['check'] else ' (≥400 only)'} | {r['bad_body'] if r['check'] else 'not checked'} | "
            f"{r['socket_errors']} | {str(r['verified']) + '/' + str(r['sampled']) + ' active' if 'verified' in r else '—'} |")
    if opts.repeat > 1:
        lines.append("")
        lines.append("Every run, tokens/s: " + "; ".join(
            f"{name} {', '.join(fmt_int(t) for t in r['all_tps'])}" for name, r in res.items()) + ".")
    if any(r.get("noisy") for r in res.values()):
        lines.append("")
        lines.append("⚠ a cargo/rustc process was running when this run ended: the number is not trustworthy.")
    lines.append("")
    if limits:
        lines.append("Bare signing on one core (criterion `sign_raw`, stead-core's signers, keys parsed once): " + ", ".join(
            f"{a} {v['ns'] / 1000:.1f} µs = {fmt_int(v['per_s'])}/s" for a, v in limits.items()) + ".")
    if "import_large_s" in extra:
        lines.append(f"Import: 1k-user file {extra['import_small_s']:.2f} s; "
                     f"{extra['large_users']:,}-user file ({extra['large_file_mb']:.0f} MB) "
                     f"{extra['import_large_s']:.2f} s (`stead import`, fresh database).")
    for db in ("small", "large"):
        if f"memory_{db}" in extra:
            m = extra[f"memory_{db}"]
            lines.append(f"Server `{db}` database: ready {extra[f'ready_ms_{db}']:.0f} ms after exec "
                         f"(first start, generating keys: {extra[f'ready_first_ms_{db}']:.0f} ms); after the load "
                         f"RSS {m['rss_mb']:.1f} MB, peak {m['hwm_mb']:.1f} MB, {m['threads']} threads.")
    lines.append("")
    lines.append("| target | measured | verdict |")
    lines.append("|---|---|---|")
    for t, m, ok in verdicts(res, extra, limits):
        lines.append(f"| {t} | {m} | {ok} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up, short criterion runs")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load per server start")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--repeat", type=int, default=1, help="rounds of every scenario; the median run is reported")
    p.add_argument("--pick", choices=("median", "best"), default="median",
                   help="which of the --repeat runs stands for a scenario")
    p.add_argument("--large-users", type=int, default=1_000_000)
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--skip-large", action="store_true", help="no 1M-user phase (no 1M import either)")
    p.add_argument("--skip-sign", action="store_true", help="do not measure bare signing rates")
    p.add_argument("--profile", help="comma-separated scenario names to run once more under perf record "
                   "(needs linux-perf); reports in bench/results/profile-*.txt")
    p.add_argument("--force", action="store_true", help="run even while cargo/rustc processes are busy")
    opts = p.parse_args()
    if opts.quick:
        opts.duration, opts.warmup = min(opts.duration, 3), 1

    # The harness itself (the poller, the introspection checks) stays off the server's core.
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    os.makedirs(DATA, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    busy = busy_builds()
    if busy and not opts.force:
        log("other builds are running; numbers would be noise. Waiting up to 30 min (--force to skip):")
        for line in busy:
            log("  " + line[:160])
        deadline = time.monotonic() + 1800
        while busy_builds() and time.monotonic() < deadline:
            time.sleep(10)
    machine = machine_info()
    scenarios = [s for s in SCENARIOS if not opts.only or s.name in opts.only.split(",")]
    if opts.skip_large:
        scenarios = [s for s in scenarios if s.db != "large"]

    extra, res, limits = {"large_users": opts.large_users}, {}, {}
    small = provisioning_file("small", 1000, 1000)
    log("importing the 1k-user file")
    extra["import_small_s"] = import_file(small, os.path.join(DATA, "db-small"))
    if any(s.db == "large" for s in scenarios):
        large = provisioning_file("large", opts.large_users, 1000)
        extra["large_file_mb"] = os.path.getsize(large) / 1e6
        log(f"importing the {opts.large_users:,}-user file ({extra['large_file_mb']:.0f} MB)")
        extra["import_large_s"] = import_file(large, os.path.join(DATA, "db-large"))

    if not opts.skip_sign:
        limits = sign_limits(1 if opts.quick else 3)

    with open(os.path.join(RESULTS, "latest-raw.txt"), "w") as raw:
        for db, (dirname, n, _) in PHASES.items():
            phase = [s for s in scenarios if s.db == db]
            if phase:
                run_phase(db, os.path.join(DATA, dirname), phase, n or opts.large_users, opts, raw, res, extra)

    text = report(machine, opts, res, extra, limits)
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump({"machine": machine, "results": res, "extra": extra, "sign_limits": limits}, f, indent=1)
    print()
    print(text)
    log(f"written to {os.path.relpath(os.path.join(RESULTS, 'latest.md'), ROOT)}")


if __name__ == "__main__":
    main()
