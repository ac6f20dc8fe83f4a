#!/usr/bin/env bash
# Extract UI text, update every locale's catalogue, compile. Run after changing UI text.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/pybabel
$PY extract -F babel.cfg -k _l -k lazy_gettext -k ngettext:1,2 -o app/translations/messages.pot --sort-by-file --no-wrap --project Revisit app
for lang in zh_Hans zh_Hant th ms; do
  if [ -f "app/translations/$lang/LC_MESSAGES/messages.po" ]; then
    $PY update -i app/translations/messages.pot -d app/translations -l "$lang" --no-wrap --no-fuzzy-matching
  else
    $PY init -i app/translations/messages.pot -d app/translations -l "$lang" --no-wrap
  fi
done
$PY compile -d app/translations --statistics 2>&1 | grep -v "^$" || true
