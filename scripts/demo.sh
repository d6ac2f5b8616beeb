#!/usr/bin/env bash
# Install the demo extras into ./.venv and run the main job: the model-inference notebook, twice (with an edit
# in between), summarised per cell; the second run is saved in demo_output/ as .ipynb and .html.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip and the build backend talk a lot (setuptools' notes on editable installs among it): keep that in a
# log, and show it only if the installation fails.
LOG=.venv/install-demo.log
echo "installing the demo's dependencies into .venv (log: $LOG)"
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".[demo]"; } >"$LOG" 2>&1; then
    cat "$LOG"
    exit 1
fi
.venv/bin/python -m notebook_memo demo "$@"
