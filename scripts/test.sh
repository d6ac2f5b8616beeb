#!/usr/bin/env bash
# Install everything into ./.venv (created if missing) and run lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m ruff check notebook_memo tests benchmarks
.venv/bin/python -m mypy
# One process: on two xdist workers (-n 2, about 11 minutes) a fresh clone's run twice met tests disturbing each
# other (a remote configured by one test receiving another's manifests); pass -n 2 to try it.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
