#!/usr/bin/env bash
# Install the demo extras into ./.venv and run the main job: the model-inference notebook, twice (with an edit
# in between), summarised per cell; the second run is saved in demo_output/ as .ipynb and .html.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[demo]"
.venv/bin/python -m notebook_memo demo "$@"
