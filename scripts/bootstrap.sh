#!/usr/bin/env bash
# Shared by demo.sh and test.sh: a virtualenv with Revisit installed, plus the Debian
# packages the browser tests and PDFs need (Chromium, CJK and Thai fonts).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
mkdir -p instance
exec 9>instance/.bootstrap.lock
flock 9 # two runs at once (CI's two passes) install one after the other
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependencies changed since the last install.
stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat .venv/.revisit-installed 2>/dev/null)" != "$stamp" ] \
  || [ ! -x .venv/bin/revisit ] \
  || ! .venv/bin/python -c "import app, flask, peewee, huey, weasyprint" 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -vE "^WARNING: Location|^$" || true
  .venv/bin/python -c "import app, flask, peewee, huey, weasyprint" # fail loudly when the install did not work
  echo "$stamp" >.venv/.revisit-installed
fi

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fonts=$(fc-list 2>/dev/null || true)
grep -i "Noto Sans CJK" <<<"$fonts" >/dev/null || need+=(fonts-noto-cjk)
grep -iE "Loma|Noto Sans Thai|Garuda|Sarabun" <<<"$fonts" >/dev/null || need+=(fonts-thai-tlwg)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
