#!/usr/bin/env bash
# Throughput of one and two stead replicas on PostgreSQL against one process
# on SQLite, and the database round trips per token (see bench/replicas.py
# and docs/replicas.md). Needs wrk, psql and a PostgreSQL server
# (default postgres://postgres@127.0.0.1:5432/postgres; --postgres URL).
#
#   bench/replicas.sh                 # 10 s per setup
#   bench/replicas.sh --duration 3    # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v psql >/dev/null || { echo "[replicas] psql is needed" >&2; exit 1; }

echo "[replicas] cargo build --release" >&2
cargo build --release --bin stead
exec python3 bench/replicas.py "$@"
