#!/usr/bin/env bash
# Installs everything and runs the whole test suite (SQLite + SQLite huey by default;
# set DATABASE_URL / REDIS_URL to run it on PostgreSQL + Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check app tests bench
exec .venv/bin/python -m pytest "$@"
