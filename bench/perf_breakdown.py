#!/usr/bin/env python3
"""Sorts the samples of a `perf record --call-graph dwarf` of stead serve into
the steps of the token path, so that a profile reads as a cost budget.

    perf_breakdown.py PERF.DATA [--freq 997] [--tokens N]

Each sample of a tokio worker thread goes to the innermost frame that names a
step (signing, claims, client authentication, form parsing, subject lookup,
audit, logging, limits), matched on the function's own path, not on the
generic arguments of a closure (an axum handler's type names every extractor);
samples under none of them go to the allocator (by the leaf frame), the HTTP
stack, the scheduler, or "other". Samples of the audit writer thread
(`stead-audit`) and of sqlx's SQLite connection threads (each connection runs
on a thread of its own) are split into SQLite work, fsync/pwrite, WAL
checkpoint, and waiting for / handing over work. With --tokens (requests
served during the recording) it also prints CPU microseconds per token.
"""

import argparse
import collections
import re
import subprocess
import sys

# Innermost match wins (frames are scanned from the leaf outwards).
STEPS = [
    ("sign: the signature (SigningKey::sign)", re.compile(r"stead_core::keys::SigningKey::sign")),
    ("sign: claims → JSON → base64url (jwt::sign_claims)", re.compile(r"stead_core::jwt::sign_claims")),
    ("issue: claims, jti, response (TokenService::claims, ::sign)",
     re.compile(r"TokenService::claims|TokenService::sign|new_jti")),
    ("authenticate: HMAC-SHA-256 secret check", re.compile(r"SecretHasher::verify")),
    ("parse: form body", re.compile(r"stead_server::form::")),
    ("parse: Basic header", re.compile(r"stead_server::basic::")),
    ("look up: subject (direct SQLite connection)",
     re.compile(r"sqlite::lookup|user_by_username|user_by_id|customer_by_email|customer_by_id")),
    ("audit: record, hand-over to the writer thread", re.compile(r"stead_core::audit|AuditWriter|TokenService::record|TokenService::audit_record")),
    ("sqlx (other queries)", re.compile(r"sqlx_core::pool|sqlx_sqlite|flume")),
    ("log line (tracing)", re.compile(r"tracing_subscriber|tracing_core|tracing::")),
    ("limits: auth throttle, concurrency", re.compile(r"stead_server::limits")),
    ("response: JSON body, headers", re.compile(r"axum::json|serde_json::ser|IntoResponse>::into_response")),
]
GENERIC = [
    ("HTTP: hyper/axum/tower + socket syscalls", re.compile(r"hyper|axum|tower|tcp_|sock_|__x64_sys_(read|write|recv|send)")),
    ("tokio scheduler, epoll, idle", re.compile(r"tokio::runtime|epoll|mio::")),
]
SWITCH = re.compile(r"finish_task_switch|__schedule|futex|park|flume::signal|recv_sync|Receiver<.*>::recv")


def samples(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,ip,sym"], capture_output=True, text=True)
    comm, tid, frames = None, None, []
    for line in out.stdout.splitlines() + [""]:
        if not line.strip():
            if comm is not None:
                yield comm, tid, frames
            comm, frames = None, []
        elif not line[0].isspace():
            parts = line.split()
            comm, tid = " ".join(parts[:-1]), parts[-1]
        else:
            frames.append(line.strip().split(" ", 1)[-1])


def own_name(frame):
    """The function's path without generic arguments (kept for `<T as Trait>::f`)."""
    return frame if frame.startswith("<") else frame.split("<", 1)[0]


ALLOCATOR = re.compile(r"^(malloc|_int_malloc|_int_free|cfree|free|realloc|calloc|malloc_consolidate|unlink_chunk|mi_|_mi_)")


def classify_worker(frames):
    for f in frames:
        for name, rx in STEPS:
            if rx.search(own_name(f)):
                return name
    if frames and ALLOCATOR.search(frames[0]):
        return "allocator (malloc/free)"
    joined = "\n".join(frames)
    for name, rx in GENERIC:
        if rx.search(joined):
            return name
    return "other (runtime glue, unknown)"


def classify_sqlite(frames, writer):
    who = "audit writer thread" if writer else "lookup reader threads"
    joined = "\n".join(frames)
    leaf = frames[0] if frames else ""
    if re.search(r"walCheckpoint|sqlite3WalCheckpoint", joined):
        return f"SQLite {who}: WAL checkpoint"
    if re.search(r"unixSync|fsync|unixWrite|pwrite", joined):
        return f"SQLite {who}: pwrite + fsync"
    if SWITCH.search(leaf) or re.search(r"finish_task_switch|futex_wait|std::thread::functions::park", joined) \
            and not re.search(r"sqlite3_step|sqlite3_exec", joined):
        return f"SQLite {who}: waiting / thread hand-over"
    return f"SQLite {who}: SQLite work"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("--freq", type=float, default=997.0)
    p.add_argument("--tokens", type=float, help="requests served while perf recorded")
    a = p.parse_args()

    all_samples = list(samples(a.data))
    if not all_samples:
        sys.exit("no samples")
    inserts = collections.Counter(t for c, t, fr in all_samples if c.startswith("sqlx") and any(
        "BtreeInsert" in f or "unixSync" in f for f in fr))
    writer = inserts.most_common(1)[0][0] if inserts else None
    counts = collections.Counter()
    switch = 0
    for comm, tid, frames in all_samples:
        if comm.startswith("stead-audit"):
            counts[classify_sqlite(frames, True)] += 1
        elif comm.startswith("sqlx"):
            counts[classify_sqlite(frames, tid == writer)] += 1
        else:
            counts[classify_worker(frames)] += 1
        if frames and re.search(r"finish_task_switch", frames[0]):
            switch += 1
    total = sum(counts.values())
    cpu_s = total / a.freq
    print(f"{total} samples = {cpu_s:.2f} CPU-s of the server" +
          (f"; {a.tokens:,.0f} tokens → {cpu_s / a.tokens * 1e6:.1f} CPU-µs per token" if a.tokens else ""))
    print(f"context switches (finish_task_switch as leaf): {switch / total:.1%} of all samples")
    print()
    print("| step | share of server CPU |" + (" CPU-µs per token |" if a.tokens else ""))
    print("|---|--:|" + ("--:|" if a.tokens else ""))
    for name, n in counts.most_common():
        per = f" {n / a.freq / a.tokens * 1e6:.1f} |" if a.tokens else ""
        print(f"| {name} | {n / total:.1%} |{per}")


if __name__ == "__main__":
    main()
