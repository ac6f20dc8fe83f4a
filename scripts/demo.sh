#!/usr/bin/env bash
# Installs everything, loads the demo business on SQLite and starts the app with its worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export REVISIT_INSECURE_COOKIES=1
# Links in messages (client page, unsubscribe) point at this very server.
export REVISIT_PUBLIC_URL="${REVISIT_PUBLIC_URL:-http://${HOST:-127.0.0.1}:${PORT:-5000}}"
.venv/bin/revisit init
if [ ! -f instance/.demo-loaded ]; then
  .venv/bin/revisit demo --customers "${DEMO_CUSTOMERS:-2000}" | tee instance/demo-logins.txt
  touch instance/.demo-loaded
else
  cat instance/demo-logins.txt 2>/dev/null || true
fi
echo
echo "Open http://127.0.0.1:${PORT:-5000}/ and sign in with one of the logins above."
exec .venv/bin/revisit serve --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
