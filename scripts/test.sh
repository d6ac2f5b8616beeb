#!/usr/bin/env bash
# Install everything into ./.venv (created if missing) and run lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# The locale tests build de_DE.UTF-8 with localedef from the system's locale sources (Debian's locales package).
if [ ! -e /usr/share/i18n/locales/de_DE ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq locales >/dev/null
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m ruff check notebook_memo tests benchmarks
.venv/bin/python -m mypy
# Two workers: many tests wait on a kernel or another process, and the other core is used meanwhile. A test that
# leaves a thread of its own running fails (tests/conftest.py), so that none goes on into the next tests.
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal "$@"
