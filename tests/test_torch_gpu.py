"""CUDA tensors and models: keyed on the device, stored and restored on it (skipped without a CUDA device)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from notebook_memo import memo
from notebook_memo.hashing import content_hash
from notebook_memo.hashing._torch import device_digest
from tests.conftest import run_kernel

pytestmark = pytest.mark.gpu

ROOT = str(Path(__file__).resolve().parent.parent)
MiB = 1 << 20


def h(value: object) -> bytes:
    return content_hash(value)


def test_the_device_digest_of_cuda_bytes_equals_the_same_computation_on_the_cpu() -> None:
    t = torch.randint(-(2**31), 2**31, (3 * MiB + 5,), dtype=torch.int32)
    assert device_digest(t.cuda()) == device_digest(t)
    odd = torch.arange(77, dtype=torch.uint8)
    assert device_digest(odd.cuda()) == device_digest(odd)


def test_every_changed_element_of_a_cuda_tensor_changes_its_key() -> None:
    base = torch.randn(16 * MiB, device="cuda")
    key = h(base)
    generator = torch.Generator().manual_seed(0)
    for position in [*torch.randint(0, base.numel(), (50,), generator=generator).tolist(), 0, base.numel() - 1]:
        changed = base.clone()
        changed[position] += 1.0
        assert h(changed) != key, position
    assert h(base.clone()) == key


def test_a_cuda_tensor_and_a_cpu_tensor_with_the_same_values_are_different_keys() -> None:
    t = torch.arange(10.0)
    assert h(t) != h(t.cuda())
    assert h(t.cuda().T) == h(t.cuda().T.contiguous())


def test_cuda_views_and_dtypes_are_keyed_by_their_values() -> None:
    base = torch.arange(4096.0, device="cuda").reshape(64, 64)
    assert h(base.T) == h(base.T.contiguous()) != h(base)
    assert h(base.to(torch.bfloat16)) != h(base.to(torch.float16))
    z = torch.complex(base, -base)
    assert h(z.conj()) == h(z.conj().resolve_conj())


def _cuda_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).cuda()


def test_in_place_updates_of_a_cuda_model_change_its_key() -> None:
    m = _cuda_net()
    keys = [h(m)]
    with torch.no_grad():
        m[0].weight.add_(1e-3)
    keys.append(h(m))
    m[2].weight.data[0, 0] = 5.0
    keys.append(h(m))
    m.load_state_dict(_cuda_net().state_dict())
    keys.append(h(m))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m(torch.randn(4, 64, device="cuda")).sum().backward()
    opt.step()
    keys.append(h(m))
    assert len(set(keys)) == 4  # load_state_dict brought the first weights back
    assert keys[3] == keys[0]


def test_a_cuda_result_comes_back_on_the_device_with_its_dtype_shape_and_grad_flag() -> None:
    @memo
    def make(n: int) -> dict[str, Any]:
        x = torch.arange(n, dtype=torch.float32, device="cuda").reshape(-1, 8)
        return {"x": x.to(torch.bfloat16), "w": torch.nn.Parameter(x.T.clone()), "cpu": torch.ones(2)}

    first = make(1024)
    second = make(1024)
    assert make.cache_info().hits == 1
    assert second["x"].device.type == "cuda" and second["x"].dtype == torch.bfloat16
    assert torch.equal(second["x"], first["x"])
    assert type(second["w"]) is torch.nn.Parameter and second["w"].requires_grad and second["w"].is_cuda
    assert second["cpu"].device.type == "cpu"


def test_a_cuda_model_output_is_computed_once_across_restarts(cache_dir: Path) -> None:
    cells = ["""
import torch
from notebook_memo import memo
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).cuda().eval()
@memo
def infer(model, x):
    with torch.no_grad():
        return model(x)
y = infer(model, torch.ones(8, 32, device="cuda"))
OUT["misses"] = infer.cache_info().misses
OUT["device"] = str(y.device)
OUT["y"] = y.cpu().tolist()
"""]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert (first["misses"], second["misses"]) == (1, 0)
    assert second["device"] == "cuda:0" and first["y"] == second["y"]


_KEY = """
import json, sys, torch
from notebook_memo.hashing import content_hash
torch.manual_seed(0)
x = torch.randn(1 << 20, device="cuda")
print(json.dumps(content_hash(x).hex()))
"""


def test_a_cuda_tensor_keys_the_same_in_every_process(tmp_path: Path) -> None:
    script = tmp_path / "key.py"
    script.write_text(_KEY)
    keys = [json.loads(subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT}).stdout)
            for seed in ("0", "1")]
    assert keys[0] == keys[1]
