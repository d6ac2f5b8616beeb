#!/usr/bin/env bash
# The GPU checks of issue 16, in one run on the device machine (after scripts/gpu_wheels.sh here):
#   device run, carry [".whl"], command: bash scripts/gpu_check.sh
# The CUDA tests (pytest -m gpu), the torch tests that also run on CPUs, then benchmarks/gpu.py; the
# logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_torch_gpu.py 2>&1 | tee "$out/gpu-tests.log"
gpu_tests=${PIPESTATUS[0]}
python3 -m pytest -q -p no:cacheprovider tests/test_torch_keys.py tests/test_torch_values.py 2>&1 \
  | tail -5 | tee "$out/torch-tests.log"
timeout 300 python3 benchmarks/gpu.py 2>&1 | tee "$out/gpu-bench.log"
exit "$gpu_tests"
