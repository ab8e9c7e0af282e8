#!/usr/bin/env python3
"""Writes a stead provisioning file (SPEC §6) for the benchmarks.

The file holds one tenant per signing algorithm (BENCH_ES256, BENCH_EDDSA,
BENCH_RS256), each with one scope, one client allowed in both realms, USERS
users and CUSTOMERS customers. Only the first tenant gets the full user and
customer counts; the others get `--small` of each (they only serve the
per-algorithm scenarios). Everything is deterministic, so the load generator
can name any subject by its index:

    user i:      id "<10000000 + i>" (numeric, like the seed document's "1001"),
                 username "user.<i>", email "user.<i>@example.com"
    customer i:  email "customer.<i>@example.com", id "c-<i>"

Usage: gen_provisioning.py --users N --customers M --out FILE [--small K]
"""

import argparse
import os
import sys

SCOPE = "bench.tokens.read"
CLIENT_ID = "bench-client-0001"
# 43 characters: meets the 32-character minimum for imported secrets.
SECRET = "bench-secret-7Jq2xVv9LmPz4RtYw8KsNc3HbGfDe1"
TENANTS = [("BENCH_ES256", "ES256"), ("BENCH_EDDSA", "EdDSA"), ("BENCH_RS256", "RS256")]


def user_id(i: int) -> str:
    return str(10_000_000 + i)


def write(out, users: int, customers: int, small: int) -> None:
    w = out.write
    for n, (tenant, alg) in enumerate(TENANTS):
        nu, nc = (users, customers) if n == 0 else (min(small, users), min(small, customers))
        w(f'[[tenants]]\nid = "{tenant}"\naudience = "https://api.example.com"\n')
        w(f'token_ttl_seconds = 3600\nsigning_alg = "{alg}"\n\n')
        w(f'[[tenants.scopes]]\nname = "{SCOPE}"\ndescription = "Benchmark scope"\n\n')
        w(f'[[tenants.clients]]\nid = "{CLIENT_ID}"\nname = "Benchmark client"\nsecret = "{SECRET}"\n')
        w(f'realms = ["user", "customer"]\nscopes = ["{SCOPE}"]\n\n')
        # Written in chunks: a million entries is ~70 MB of text.
        chunk = []
        for i in range(nu):
            chunk.append(
                f'[[tenants.users]]\nid = "{user_id(i)}"\nusername = "user.{i}"\nemail = "user.{i}@example.com"\n\n'
            )
            if len(chunk) == 10_000:
                w("".join(chunk))
                chunk.clear()
        for i in range(nc):
            chunk.append(f'[[tenants.customers]]\nemail = "customer.{i}@example.com"\nid = "c-{i}"\n\n')
            if len(chunk) == 10_000:
                w("".join(chunk))
                chunk.clear()
        w("".join(chunk))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--small", type=int, default=1000, help="users and customers of the other tenants")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8", buffering=1 << 20) as f:
        write(f, a.users, a.customers, a.small)
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
