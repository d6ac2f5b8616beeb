#!/usr/bin/env bash
# Fetch, here, the wheels the GPU machine lacks (its image has torch, numpy, xxhash, cloudpickle, pytest,
# pytest-timeout, pandas, joblib, tqdm, pygments, psutil and Python 3.12) into ./.whl, which git ignores.
# Then run scripts/gpu_check.sh there, carrying .whl (see the device tool's README).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  diskcache ipython ipython-pygments-lexers jedi parso matplotlib-inline pexpect ptyprocess prompt_toolkit \
  wcwidth stack_data executing asttokens pure_eval traitlets decorator
ls .whl
