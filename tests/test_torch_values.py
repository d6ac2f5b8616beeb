"""torch values as results: tensors written out of band from their memory and restored as they were
(dtype, shape, strides, requires_grad, class, device), a missing device falling back to the CPU with one
warning, and copy-on-write maps with mmap=True."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from notebook_memo import MemoWarning, _serialize, memo
from tests.conftest import run_kernel

MiB = 1 << 20


def _round_trip(value: Any) -> Any:
    payload = _serialize.dumps(value)
    return _serialize.loads(payload.to_bytes()[: len(payload.pickle)], [bytearray(b) for b in payload.buffers])


def test_a_tensor_is_pickled_out_of_band() -> None:
    t = torch.arange(MiB, dtype=torch.float32)
    payload = _serialize.dumps({"t": t, "n": 1})
    assert len(payload.pickle) < 1000
    assert sum(b.nbytes for b in payload.buffers) == t.nbytes


def test_a_module_s_parameters_are_pickled_out_of_band() -> None:
    layer = torch.nn.Linear(256, 256)
    payload = _serialize.dumps(layer)
    assert len(payload.pickle) < 4000
    assert sum(b.nbytes for b in payload.buffers) == sum(p.nbytes for p in layer.parameters())


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2,
          torch.complex64, torch.complex128, torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32,
          torch.int64, torch.uint16, torch.uint32, torch.uint64]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_comes_back_bit_for_bit(dtype: torch.dtype) -> None:
    bits = torch.randint(0, 256, (6, 8 * 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    if dtype is torch.bool:
        t = bits % 2 == 0
    else:
        t = bits.view(dtype)
    back = _round_trip(t)
    assert back.dtype == dtype and back.shape == t.shape
    assert torch.equal(back.view(torch.uint8), t.view(torch.uint8))


@pytest.mark.parametrize("make", [
    lambda: torch.tensor(3.5),
    lambda: torch.empty(0, 4),
    lambda: torch.arange(24.0).reshape(2, 3, 4),
], ids=["0-d", "empty", "3-d"])
def test_shapes_come_back(make: Any) -> None:
    t = make()
    back = _round_trip(t)
    assert back.shape == t.shape and torch.equal(back, t)


def test_dense_strides_come_back_and_other_views_come_back_contiguous() -> None:
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    last = image.contiguous(memory_format=torch.channels_last)
    back = _round_trip(last)
    assert back.stride() == last.stride() and torch.equal(back, last)
    assert back.is_contiguous(memory_format=torch.channels_last)
    transposed = image[0, 0].T
    assert _round_trip(transposed).stride() == transposed.stride()
    view = image[:, 1, ::2]
    back = _round_trip(view)
    assert torch.equal(back, view) and back.is_contiguous()


@pytest.mark.filterwarnings("ignore:.*autograd graph")
def test_requires_grad_and_parameters_come_back() -> None:
    leaf = torch.ones(3, requires_grad=True)
    back = _round_trip({"leaf": leaf, "out": leaf * 2, "p": torch.nn.Parameter(torch.zeros(2))})
    assert back["leaf"].requires_grad and back["out"].requires_grad
    assert type(back["p"]) is torch.nn.Parameter and back["p"].requires_grad
    assert not _round_trip(torch.ones(2)).requires_grad


def test_a_conjugate_view_comes_back_as_its_values() -> None:
    x = torch.tensor([1 + 2j, 3 - 4j])
    back = _round_trip(x.conj())
    assert torch.equal(back, x.conj()) and not back.is_conj()


def test_a_tensor_held_twice_comes_back_as_one_object() -> None:
    t = torch.ones(3)
    back = _round_trip([t, t])
    assert back[0] is back[1]


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    hidden: list[torch.Tensor]


def test_a_model_and_its_outputs_come_back_through_a_restart(cache_dir: Path) -> None:
    cells = ["""
import dataclasses, torch
from notebook_memo import memo

@memo
def run():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8)).eval()
    x = torch.randn(4, 8)
    with torch.no_grad():
        out = model(x)
    return {"model": model, "out": out, "both": [out, x.to(torch.bfloat16)]}

r = run()
OUT["misses"] = run.cache_info().misses
OUT["out"] = r["out"].tolist()
OUT["again"] = r["model"](torch.zeros(1, 8).expand(4, 8)).tolist()
OUT["kinds"] = [type(p).__name__ for p in r["model"].parameters()]
OUT["bf16"] = str(r["both"][1].dtype)
OUT["same"] = r["both"][0] is r["out"]
"""]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert (first["misses"], second["misses"]) == (1, 0)
    for key in ("out", "again", "kinds", "bf16", "same"):
        assert first[key] == second[key], key
    assert second["kinds"] == ["Parameter"] * 4 and second["same"] is True


_STORE_ON_A_MISSING_DEVICE = """
import torch
from notebook_memo import memo, _torch_values
# This machine has no such device: pretend the tensors were made on one, as a GPU kernel's would be.
_torch_values.device_of = lambda t: "cuda:3"

@memo
def make():
    return {"a": torch.arange(4.0), "b": torch.ones(2, dtype=torch.float16)}

make()
"""

_LOAD = """
import warnings, torch
from notebook_memo import memo

@memo
def make():
    return {"a": torch.arange(4.0), "b": torch.ones(2, dtype=torch.float16)}

r = make()
r2 = make()
OUT["misses"] = make.cache_info().misses
OUT["devices"] = [str(r["a"].device), str(r["b"].device)]
OUT["a"] = r["a"].tolist()
"""


def test_a_tensor_from_a_device_this_machine_lacks_loads_on_the_cpu_with_one_warning(cache_dir: Path) -> None:
    run_kernel([_STORE_ON_A_MISSING_DEVICE], cache_dir)
    out = run_kernel([_LOAD], cache_dir)
    assert out["misses"] == 0
    assert out["devices"] == ["cpu", "cpu"] and out["a"] == [0.0, 1.0, 2.0, 3.0]
    device_warnings = [w for w in out["_warnings"] if "cuda:3" in w]
    assert len(device_warnings) == 1, out["_warnings"]
    assert device_warnings[0].startswith("MemoWarning") and "CPU" in device_warnings[0]


def test_mmap_returns_tensors_whose_writes_stay_in_the_process() -> None:
    @memo(mmap=True)
    def make(n: int) -> dict[str, Any]:
        return {"t": torch.arange(n, dtype=torch.float32), "a": torch.arange(n).numpy()}

    make(MiB)
    first = make(MiB)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "buffer is not writable" warning from torch
        second = make(MiB)
    assert make.cache_info().hits == 2
    first["t"][0] = -1.0
    assert second["t"][0] == 0.0 and make(MiB)["t"][0] == 0.0
    assert not first["a"].flags.writeable  # arrays stay read-only maps


def test_a_stored_tensor_that_was_damaged_is_recomputed(cache_dir: Path) -> None:
    @memo
    def make(n: int) -> torch.Tensor:
        return torch.arange(n, dtype=torch.float64)

    make(MiB)
    payloads = [p for p in cache_dir.rglob("*.val")]
    assert payloads
    for p in payloads:
        data = bytearray(p.read_bytes())
        data[-100] ^= 0xFF
        p.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemoWarning)
        assert torch.equal(make(MiB), torch.arange(MiB, dtype=torch.float64))
    assert make.cache_info().misses == 2


class Tagged(torch.Tensor):
    pass


def _with_unit() -> torch.Tensor:
    t = torch.arange(3.0)
    t.unit = "m"  # type: ignore[attr-defined]
    return t


OTHER_KINDS = {
    "sparse coo": lambda: torch.eye(3).to_sparse(),
    "sparse csr": lambda: torch.eye(3).to_sparse_csr(),
    "quantized": lambda: torch.quantize_per_tensor(torch.arange(4.0), 0.5, 1, torch.quint8),
    "nested": lambda: torch.nested.nested_tensor([torch.ones(2), torch.zeros(3)]),
    "jagged": lambda: torch.nested.nested_tensor([torch.ones(2), torch.zeros(3)], layout=torch.jagged),
    "subclass": lambda: torch.arange(3.0).as_subclass(Tagged),
    "with an attribute": _with_unit,
    "meta": lambda: torch.empty(2, 3, device="meta"),
}


@pytest.mark.filterwarnings("ignore:.*(beta state|deprecated|prototype stage).*")
@pytest.mark.parametrize("kind", list(OTHER_KINDS))
def test_other_tensor_kinds_come_back_through_torch_s_own_pickling(kind: str) -> None:
    t = OTHER_KINDS[kind]()
    back = _round_trip(t)
    assert type(back) is type(t) and back.layout == t.layout and back.dtype == t.dtype
    assert back.device == t.device and back.__dict__.keys() == t.__dict__.keys()
    if t.is_nested:
        assert all(torch.equal(a, b) for a, b in zip(back.unbind(), t.unbind()))
    elif t.is_quantized:
        assert torch.equal(back.int_repr(), t.int_repr()) and back.q_scale() == t.q_scale()
    elif t.device.type != "meta":
        assert torch.equal(back.to_dense(), t.to_dense())


def test_gradients_come_back_with_their_tensors() -> None:
    m = torch.nn.Linear(3, 2)
    m(torch.ones(4, 3)).sum().backward()
    back = _round_trip(m)
    for a, b in zip(m.parameters(), back.parameters()):
        assert b.grad is not None and torch.equal(a.grad, b.grad)  # type: ignore[arg-type]
    frozen = torch.ones(2)
    frozen.grad = torch.full((2,), 3.0)
    assert torch.equal(_round_trip(frozen).grad, frozen.grad)  # type: ignore[arg-type]
    assert _round_trip(torch.ones(2, requires_grad=True)).grad is None


@pytest.mark.filterwarnings("ignore:.*(beta state|invariant checks).*")
def test_a_sparse_tensor_keeps_requires_grad() -> None:
    t = torch.eye(3).to_sparse().requires_grad_()
    back = _round_trip(t)
    assert back.requires_grad and torch.equal(back.detach().to_dense(), torch.eye(3))


def test_a_result_with_an_autograd_graph_warns_once_that_a_hit_returns_a_leaf() -> None:
    from notebook_memo import _torch_values

    _torch_values._warned_graph = False
    w = torch.ones(2, requires_grad=True)
    with pytest.warns(MemoWarning, match="grad_fn") as caught:
        _round_trip({"loss": (w * 2).sum(), "out": w * 3})
    assert len([c for c in caught if "grad_fn" in str(c.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _round_trip((w * 2).sum())  # once per process


def test_an_empty_result_comes_back_on_its_own_device_inside_a_device_context() -> None:
    @memo
    def empty() -> torch.Tensor:
        return torch.zeros(0, device="cpu")

    with torch.device("meta"):
        empty()
        hit = empty()
    assert hit.device.type == "cpu" and empty.cache_info().hits == 1
