#!/usr/bin/env python3
"""How revoking (RFC 7009) holds up as revoked tokens accumulate.

    python3 bench/revocations.py [--binary target/release/stead] [--tokens 5000]

Imports the 1k-user benchmark file into a fresh data directory, starts the
server pinned to core 0 (this client runs on core 1), issues --tokens tokens
and revokes them one after the other over one keep-alive connection. Prints,
for each tenth of them, revocations per second and the latency of one token
request made right then. Every revocation must answer 200 and every revoked
token must introspect as inactive, or the run fails.

A revocation is a durable write (one commit and fsync), so the absolute rate
is mostly the disk's; what matters is that it stays flat while thousands of
unexpired revocations pile up.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import gen_provisioning as g  # noqa: E402

DATA = os.path.join(ROOT, "bench", "data", "small-1000u-1000c.toml")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "stead"))
    p.add_argument("--tokens", type=int, default=5000)
    opts = p.parse_args()
    if not os.path.exists(DATA):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_provisioning.py"),
                        "--users", "1000", "--customers", "1000", "--out", DATA], check=True)
    os.sched_setaffinity(0, {1})
    work = tempfile.mkdtemp(prefix="stead-revocations.")
    data_dir = os.path.join(work, "data")
    subprocess.run([opts.binary, "import", DATA, "--data-dir", data_dir], check=True, capture_output=True)
    port = 20000 + os.getpid() % 20000
    server = subprocess.Popen(["taskset", "-c", "0", opts.binary, "serve", "--listen", f"127.0.0.1:{port}",
                               "--data-dir", data_dir, "--log-level", "warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run(port, opts.tokens)
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", work])


def run(port, n):
    http = requests.Session()
    for _ in range(200):
        try:
            http.get(f"http://127.0.0.1:{port}/readyz").raise_for_status()
            break
        except requests.RequestException:
            time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/system/auth/BENCH_ES256-U/oauth2"
    client = dict(client_id=g.CLIENT_ID, client_secret=g.SECRET)
    grant = dict(client, grant_type="password", scope=g.SCOPE)

    def token(i):
        r = http.post(base + "/token", data=dict(grant, subject_username=f"user.{i % 1000}"))
        r.raise_for_status()
        return r.json()["access_token"]

    tokens = [token(i) for i in range(n)]
    print(f"{'revoked so far':>15} {'revocations/s':>14} {'token request ms':>17}")
    chunk = max(n // 10, 1)
    started = time.perf_counter()
    for i, t in enumerate(tokens, 1):
        r = http.post(base + "/revoke", data=dict(client, token=t))
        if r.status_code != 200:
            sys.exit(f"revocation {i} answered {r.status_code}: {r.text}")
        if i % chunk == 0:
            rate = chunk / (time.perf_counter() - started)
            t0 = time.perf_counter()
            token(i)
            latency = (time.perf_counter() - t0) * 1000
            print(f"{i:>15,} {rate:>14,.0f} {latency:>17.2f}", flush=True)
            started = time.perf_counter()
    for t in tokens[:: max(n // 50, 1)]:
        r = http.post(base + "/introspect", data=dict(client, token=t))
        if r.json().get("active") is not False:
            sys.exit(f"a revoked token is still active: {r.text}")
    print("every sampled revoked token introspects as inactive")


if __name__ == "__main__":
    main()
