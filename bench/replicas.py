#!/usr/bin/env python3
"""Replicas on PostgreSQL against one process on SQLite (see docs/replicas.md).

Measures, on this machine:

  1. throughput of one `stead serve` on SQLite, one on PostgreSQL, and two
     replicas sharing one PostgreSQL database (load split evenly, as a load
     balancer would), with wrk and bench/token.lua (every answer checked);
  2. database round trips per token on the hot path: one replica talks to
     PostgreSQL through a counting proxy that reads the client side of the
     wire protocol; every Sync ('S') or simple Query ('Q') message is one
     round trip, every Execute ('E') one statement. The replica's idle
     traffic (the change-version poll, four times a second) is measured on
     its own and reported apart.

Usage: bench/replicas.sh [--duration S] [--connections C] [--users N]
                         [--postgres URL]   (an administrative URL; a database
                                             stead_bench_replicas is created)

Writes bench/results/replicas.md.
"""

import argparse
import asyncio
import datetime
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import gen_provisioning as gen  # noqa: E402

STEAD = os.path.join(ROOT, "target", "release", "stead")
LUA = os.path.join(BENCH, "token.lua")
WORK = os.path.join(BENCH, "data", "replicas")
DB = "stead_bench_replicas"


def log(msg):
    print(f"[replicas] {msg}", file=sys.stderr, flush=True)


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


def with_database(url, db):
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{db}" + (f"?{query}" if query else "")


def via(url, port):
    scheme, _, rest = url.partition("://")
    authority, sep, tail = rest.partition("/")
    userinfo = authority.rsplit("@", 1)[0] + "@" if "@" in authority else ""
    return f"{scheme}://{userinfo}127.0.0.1:{port}{sep}{tail}"


def host_port(url):
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host, _, port = authority.partition(":")
    return host or "127.0.0.1", int(port or 5432)


def psql(admin, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", sql], check=True, capture_output=True)


class Server:
    def __init__(self, data_dir, database_url=None, pool=None):
        self.data_dir, self.database_url, self.pool = data_dir, database_url, pool
        self.port = free_port()
        self.proc = None

    def start(self):
        env = dict(os.environ)
        for k in ("STEAD_DATABASE_URL", "STEAD_MASTER_KEY", "STEAD_CONFIG"):
            env.pop(k, None)
        if self.database_url:
            env["STEAD_DATABASE_URL"] = self.database_url
        if self.pool:
            env["STEAD_DATABASE_POOL_SIZE"] = str(self.pool)
        logf = open(os.path.join(WORK, f"serve-{self.port}.log"), "w")
        cmd = [STEAD, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
               "--log-level", "warn"]
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env)
        started = time.monotonic()
        while http_status(self.port) != 200:
            if self.proc.poll() is not None or time.monotonic() - started > 60:
                raise SystemExit(f"server on port {self.port} did not start; see {logf.name}")
            time.sleep(0.01)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def import_file(path, data_dir, database_url=None):
    env = dict(os.environ)
    env.pop("STEAD_DATABASE_URL", None)
    if database_url:
        env["STEAD_DATABASE_URL"] = database_url
    started = time.monotonic()
    out = subprocess.run([STEAD, "import", path, "--data-dir", data_dir], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"import failed: {out.stderr}")
    return time.monotonic() - started


def wrk_cmd(port, duration, connections, n_subjects):
    url = f"http://127.0.0.1:{port}/system/auth/BENCH_ES256-U/oauth2/token"
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", LUA, url, "--",
            f"client={gen.CLIENT_ID}", f"secret={gen.SECRET}", f"scope={gen.SCOPE}", "subject=username",
            f"n={n_subjects}", "expect=200"]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """User + system CPU seconds of `pids` so far (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def pg_backends(admin):
    out = subprocess.run(["psql", "-At", admin, "-c", f"SELECT pid FROM pg_stat_activity WHERE datname = '{DB}'"],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def load(ports, duration, connections, n_subjects):
    """wrk against every port at once, connections split evenly; summed."""
    per = max(1, connections // len(ports))
    procs = [subprocess.Popen(wrk_cmd(p, duration, per, n_subjects), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for p in ports]
    total = {"requests": 0, "bad": 0, "p99_us": 0, "p50_us": 0}
    for p in procs:
        out, _ = p.communicate()
        m = re.search(r"^STEAD_RESULT (.*)$", out, re.M)
        if not m:
            raise SystemExit(f"wrk failed:\n{out}")
        r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        total["requests"] += r["requests"]
        total["bad"] += r["bad_status"] + r["bad_body"] + r["status_ge400"]
        total["p99_us"] = max(total["p99_us"], r["p99_us"])
        total["p50_us"] = max(total["p50_us"], r["p50_us"])
    total["tps"] = total["requests"] / duration
    return total


# ------------------------------------------------------------ counting proxy

class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def snapshot(self):
        with self.lock:
            return dict(self.counts)


async def pump_counting(reader, writer, counter):
    """Client → server: the startup message (untyped), then typed messages."""
    buf = b""
    started = False
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            buf += data
            while True:
                if not started:
                    if len(buf) < 8:
                        break
                    (length,) = struct.unpack("!I", buf[:4])
                    if len(buf) < length:
                        break
                    code = struct.unpack("!I", buf[4:8])[0]
                    buf = buf[length:]
                    if code != 80877103:  # not an SSLRequest: the real startup
                        started = True
                    continue
                if len(buf) < 5:
                    break
                kind = chr(buf[0])
                (length,) = struct.unpack("!I", buf[1:5])
                if len(buf) < 1 + length:
                    break
                buf = buf[1 + length:]
                counter.add(kind)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def start_proxy(upstream, counter):
    port = free_port()
    ready = threading.Event()

    def run():
        async def handle(cr, cw):
            sr, sw = await asyncio.open_connection(*upstream)
            await asyncio.gather(pump_counting(cr, sw, counter), pump(sr, cw))

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", port)
            ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return port


def diff(after, before):
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--postgres", default=os.environ.get("STEAD_BENCH_POSTGRES_URL",
                                                        "postgres://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--round-trip-tokens-seconds", type=int, default=5)
    opts = p.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    toml = os.path.join(WORK, "bench.toml")
    with open(toml, "w") as f:
        gen.write(f, opts.users, 100, 100)
    pg_url = with_database(opts.postgres, DB)
    # Plain TCP, so the counting proxy can read the protocol.
    pg_url += ("&" if "?" in pg_url else "?") + "sslmode=disable"
    psql(opts.postgres, f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    psql(opts.postgres, f'CREATE DATABASE "{DB}"')
    sqlite_dir = os.path.join(WORK, "sqlite")
    pg_dir = os.path.join(WORK, "pg")  # holds the master key the replicas share
    os.makedirs(pg_dir)
    t_sqlite = import_file(toml, sqlite_dir)
    t_pg = import_file(toml, pg_dir, pg_url)
    log(f"imported {opts.users} users: SQLite {t_sqlite:.2f} s, PostgreSQL {t_pg:.2f} s")

    results = []
    scenarios = [
        ("SQLite, 1 process", lambda: [Server(sqlite_dir).start()]),
        ("PostgreSQL, 1 replica", lambda: [Server(pg_dir, pg_url).start()]),
        ("PostgreSQL, 2 replicas", lambda: [Server(pg_dir, pg_url).start(), Server(pg_dir, pg_url).start()]),
    ]
    for name, start in scenarios:
        servers = start()
        try:
            ports = [s.port for s in servers]
            load(ports, 2, opts.connections, opts.users)  # warm-up
            stead_pids = [s.proc.pid for s in servers]
            pg_pids = pg_backends(opts.postgres) if "PostgreSQL" in name else []
            cpu0 = (cpu_seconds(stead_pids), cpu_seconds(pg_pids))
            r = load(ports, opts.duration, opts.connections, opts.users)
            cpu1 = (cpu_seconds(stead_pids), cpu_seconds(pg_pids))
            r["stead_us"] = (cpu1[0] - cpu0[0]) / r["requests"] * 1e6
            r["pg_us"] = (cpu1[1] - cpu0[1]) / r["requests"] * 1e6
            log(f"{name}: {r['tps']:,.0f} tokens/s, p50 ≤ {r['p50_us'] / 1000:.1f} ms, "
                f"p99 ≤ {r['p99_us'] / 1000:.1f} ms, bad {r['bad']}; CPU per token: stead {r['stead_us']:.0f} µs, "
                f"PostgreSQL backends {r['pg_us']:.0f} µs")
            results.append((name, r))
        finally:
            for s in servers:
                s.stop()

    # Round trips per token.
    counter = Counter()
    proxy = start_proxy(host_port(opts.postgres), counter)
    server = Server(pg_dir, via(pg_url, proxy)).start()
    try:
        load([server.port], 2, 8, opts.users)
        time.sleep(1)
        before = counter.snapshot()
        idle_s = 4
        time.sleep(idle_s)
        idle = diff(counter.snapshot(), before)
        before = counter.snapshot()
        r = load([server.port], opts.round_trip_tokens_seconds, 8, opts.users)
        busy = diff(counter.snapshot(), before)
    finally:
        server.stop()
    tokens = r["requests"]
    polls_per_s = (idle.get("S", 0) + idle.get("Q", 0)) / idle_s
    poll_rt = polls_per_s * opts.round_trip_tokens_seconds
    rt = busy.get("S", 0) + busy.get("Q", 0)
    executes = busy.get("E", 0)
    per_token_rt = (rt - poll_rt) / tokens
    per_token_exec = (executes - idle.get("E", 0) / idle_s * opts.round_trip_tokens_seconds) / tokens
    log(f"round trips: {tokens} tokens, {rt} round trips ({per_token_rt:.2f} per token without the poll), "
        f"{executes} statements ({per_token_exec:.2f} per token); idle: {polls_per_s:.1f} round trips/s")

    machine = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True,
                             text=True).stdout.strip()
    pg_version = subprocess.run(["psql", "-At", opts.postgres, "-c", "SHOW server_version"], capture_output=True,
                                text=True).stdout.strip()
    lines = [
        "# Replicas on PostgreSQL vs one process on SQLite",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} cores ({machine}); "
        f"PostgreSQL {pg_version} on the same machine; release build; wrk with {opts.connections} connections "
        f"for {opts.duration} s, split evenly between replicas; tenant BENCH_ES256, {opts.users} users, "
        "subject by username; every answer checked. stead, PostgreSQL and wrk share the cores, so the numbers "
        "compare the backends on this machine, not the ceiling of a replica on a core of its own.",
        "",
        "| setup | tokens/s | p50 | p99 | stead CPU per token | PostgreSQL CPU per token | tokens per stead core |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results:
        pg = f"{r['pg_us']:.0f} µs" if r["pg_us"] else "—"
        lines.append(f"| {name} | {r['tps']:,.0f} | {r['p50_us'] / 1000:.1f} ms | {r['p99_us'] / 1000:.1f} ms | "
                     f"{r['stead_us']:.0f} µs | {pg} | {1e6 / r['stead_us']:,.0f}/s |")
    lines += [
        "",
        "CPU per token is the user + system time of the stead processes (and, on PostgreSQL, of the database "
        "backends serving them) divided by the tokens issued; its inverse is what one core would sustain if "
        "it did nothing else. The PostgreSQL backends' share excludes the WAL writer and checkpointer.",
    ]
    lines += [
        "",
        "## Database round trips per token",
        "",
        f"One replica, {tokens} tokens with 8 connections, counted on the wire: **{per_token_rt:.2f} round "
        f"trips and {per_token_exec:.2f} statements per token** (the change-version poll, "
        f"{polls_per_s:.1f} round trips/s when idle, subtracted).",
        "",
        "A token costs one subject lookup (one statement, one round trip) and its share of one audit batch "
        "(one `INSERT … SELECT FROM UNNEST`, one round trip per batch). sqlx also tests each connection "
        "when it goes back to its pool (a bare Sync, one round trip, off the request's path). Batches grow "
        "with load, so the audit share falls as concurrency rises.",
        "",
        f"Message counts during the token phase: {dict(sorted(busy.items()))}; idle over {idle_s} s: "
        f"{dict(sorted(idle.items()))}.",
    ]
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    out = os.path.join(BENCH, "results", "replicas.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    psql(opts.postgres, f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    log(f"written to {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
