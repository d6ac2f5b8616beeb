"""torch values as keys: every tensor kind keyed by its whole content or refused by name, and modules
keyed by class code, structure, parameters, buffers, hooks and training flag, through in-place updates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from notebook_memo import UnhashableArgument, memo
from notebook_memo.hashing import content_hash
from tests.conftest import Counter, Shell, run_kernel

ROOT = str(Path(__file__).resolve().parent.parent)

# torch's notices about its beta, prototype and deprecated features, which these tests use on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*(beta state|invariant checks|deprecated|prototype stage).*")


def h(value: object) -> bytes:
    return content_hash(value)


@pytest.fixture(params=["xxh3", "device digest"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with CPU tensors hashed as on a CPU, then as on an accelerator (the device digest)."""
    from notebook_memo.hashing import _torch as _torch_hash

    monkeypatch.setattr(_torch_hash, "digest_cpu_on_device", request.param == "device digest")
    return str(request.param)


# -- tensors: views with lazy bits, classes, grad flags ------------------------------------------


def test_the_tests_route_cpu_tensors_through_the_device_digest_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.hashing import _torch as _torch_hash

    x = torch.arange(10.0)
    as_on_a_cpu = h(x)
    monkeypatch.setattr(_torch_hash, "digest_cpu_on_device", True)
    assert h(x) != as_on_a_cpu


def test_a_conjugate_view_is_keyed_by_the_values_it_reads_as(route: str) -> None:
    x = torch.tensor([1 + 2j, 3 - 4j])
    assert h(x.conj()) == h(x.conj().resolve_conj())
    assert h(x.conj()) != h(x)


def test_a_negative_view_is_keyed_by_the_values_it_reads_as(route: str) -> None:
    x = torch.tensor([1 + 2j, 3 - 4j])
    neg = x.conj().imag  # a real tensor with the negative bit set
    assert neg.is_neg()
    assert h(neg) == h(neg.resolve_neg())
    assert h(neg) != h(x.imag)


def test_requires_grad_is_in_the_key() -> None:
    # A body's result differs: a tensor that requires grad gives results that carry a graph.
    assert h(torch.ones(3, requires_grad=True)) != h(torch.ones(3))


def test_a_parameter_and_a_tensor_with_the_same_values_are_different_keys() -> None:
    assert h(torch.nn.Parameter(torch.ones(3), requires_grad=False)) != h(torch.ones(3))


class Tagged(torch.Tensor):
    pass


def test_a_tensor_subclass_is_keyed_by_its_class() -> None:
    x = torch.ones(3)
    assert h(x.as_subclass(Tagged)) != h(x)
    assert h(x.as_subclass(Tagged)) == h(torch.ones(3).as_subclass(Tagged))


def test_an_attribute_set_on_a_tensor_is_in_the_key() -> None:
    a, b = torch.ones(3), torch.ones(3)
    b.unit = "metres"  # type: ignore[attr-defined]
    assert h(a) != h(b)


def test_same_bytes_in_another_dtype_is_another_key(route: str) -> None:
    bits = torch.arange(8, dtype=torch.uint8)
    views = [bits.view(d) for d in (torch.uint8, torch.int8, torch.float8_e4m3fn, torch.float8_e5m2, torch.bool)]
    assert len({h(v) for v in views}) == len(views)
    half = torch.arange(4, dtype=torch.int16)
    assert h(half.view(torch.float16)) != h(half.view(torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2,
                                   torch.complex64, torch.complex128, torch.bool, torch.int64, torch.uint16])
def test_every_element_of_every_dtype_is_in_the_key(dtype: torch.dtype, route: str) -> None:
    base = torch.arange(40).reshape(5, 8) % 2 == 0 if dtype is torch.bool else torch.arange(40).reshape(5, 8).to(dtype)
    seen = {h(base)}
    for k in range(40):
        changed = base.clone()
        if dtype is torch.bool:
            changed.view(-1)[k] = ~changed.view(-1)[k]
        else:  # flip the lowest bit of the element's first byte (add is not defined for every dtype)
            changed.view(-1).view(torch.uint8)[k * base.element_size()] ^= 1
        seen.add(h(changed))
    assert len(seen) == 41


def test_a_strided_view_is_keyed_by_its_values(route: str) -> None:
    base = torch.arange(100.0).reshape(10, 10)
    assert h(base.T) == h(base.T.contiguous())
    assert h(base[::2, 1::3]) == h(base[::2, 1::3].clone())
    assert h(base.T) != h(base)


def test_shape_is_in_the_key(route: str) -> None:
    x = torch.arange(6.0)
    assert len({h(x), h(x.reshape(2, 3)), h(x.reshape(3, 2)), h(x.reshape(1, 6))}) == 4


# -- layouts ---------------------------------------------------------------------------------------


def _dense() -> torch.Tensor:
    return torch.tensor([[0.0, 2.0, 0.0, 0.0], [1.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0], [4.0, 0.0, 5.0, 0.0]])


SPARSE = {
    "coo": lambda d: d.to_sparse(),
    "csr": lambda d: d.to_sparse_csr(),
    "csc": lambda d: d.to_sparse_csc(),
    "bsr": lambda d: d.to_sparse_bsr((2, 2)),
    "bsc": lambda d: d.to_sparse_bsc((2, 2)),
}


@pytest.mark.parametrize("layout", list(SPARSE))
def test_a_sparse_tensor_is_keyed_by_its_structure_and_values(layout: str, route: str) -> None:
    make = SPARSE[layout]
    d = _dense()
    assert h(make(d)) == h(make(d.clone()))
    assert h(make(d)) != h(d)
    changed = d.clone()
    changed[3, 2] = 6.0
    assert h(make(changed)) != h(make(d))
    moved = d.clone()
    moved[3, 2], moved[3, 3] = 0.0, 5.0
    assert h(make(moved)) != h(make(d))
    assert len({h(make(d)) for make in SPARSE.values()}) == len(SPARSE)


def test_an_uncoalesced_sparse_tensor_is_keyed_by_what_it_holds() -> None:
    i = torch.tensor([[0, 0], [1, 1]])
    twice = torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0]), (2, 2))
    once = torch.sparse_coo_tensor(i[:, :1], torch.tensor([3.0]), (2, 2))
    assert h(twice) != h(torch.sparse_coo_tensor(i, torch.tensor([2.0, 2.0]), (2, 2)))
    assert h(twice.coalesce()) == h(once.coalesce())


def test_a_quantized_tensor_is_keyed_by_its_integers_and_its_scale() -> None:
    x = torch.tensor([0.0, 1.0, 2.0])
    a = torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)
    assert h(a) == h(torch.quantize_per_tensor(x.clone(), 0.1, 0, torch.quint8))
    assert h(a) != h(torch.quantize_per_tensor(x * 2, 0.2, 0, torch.quint8))  # same integers, other scale
    assert h(a) != h(torch.quantize_per_tensor(x + 0.5, 0.1, 5, torch.quint8))  # same integers, other zero point
    assert h(a) != h(torch.quantize_per_tensor(x, 0.1, 0, torch.qint8))


def test_a_per_channel_quantized_tensor_is_keyed_by_its_scales() -> None:
    x = torch.ones(2, 3)
    def q(scales: list[float], axis: int = 0) -> torch.Tensor:
        return torch.quantize_per_channel(x * torch.tensor(scales).reshape(-1, 1) * 10, torch.tensor(scales),
                                          torch.zeros(2, dtype=torch.long), axis, torch.qint8)
    assert h(q([0.1, 0.2])) == h(q([0.1, 0.2]))
    assert h(q([0.1, 0.2])) != h(q([0.1, 0.3]))


def test_a_meta_tensor_is_keyed_by_its_shape_and_dtype() -> None:
    assert h(torch.empty(3, device="meta")) == h(torch.empty(3, device="meta"))
    assert h(torch.empty(3, device="meta")) != h(torch.empty(4, device="meta"))
    assert h(torch.empty(3, device="meta")) != h(torch.empty(3, dtype=torch.float16, device="meta"))


@pytest.mark.parametrize("layout", [torch.strided, torch.jagged], ids=str)
def test_a_nested_tensor_is_keyed_by_its_components(layout: torch.layout) -> None:
    def nt(*parts: list[float]) -> torch.Tensor:
        return torch.nested.nested_tensor([torch.tensor(p) for p in parts], layout=layout)
    assert h(nt([1.0, 2.0], [3.0])) == h(nt([1.0, 2.0], [3.0]))
    assert h(nt([1.0, 2.0], [3.0])) != h(nt([1.0], [2.0, 3.0]))
    assert h(nt([1.0, 2.0], [3.0])) != h(nt([1.0, 2.0], [4.0]))


def test_a_tensor_whose_content_cannot_be_read_is_refused_naming_it() -> None:
    x = torch.ones(3)

    class Opaque(torch.Tensor):
        """A wrapper subclass with no storage of its own."""

        @staticmethod
        def __new__(cls, inner: torch.Tensor) -> Any:
            return torch.Tensor._make_wrapper_subclass(cls, inner.shape, dtype=inner.dtype)

        def __init__(self, inner: torch.Tensor) -> None:
            pass

        @classmethod
        def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            raise NotImplementedError(func)

    @memo
    def f(t: Any) -> int:
        return 1

    with pytest.raises(UnhashableArgument, match=r"t\b.*Opaque"):
        f(Opaque(x))


# -- modules ---------------------------------------------------------------------------------------


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))


def test_equal_modules_have_equal_keys_and_any_weight_changes_it(route: str) -> None:
    assert h(_net()) == h(_net())
    for i, p in enumerate(_net().parameters()):
        m = _net()
        with torch.no_grad():
            list(m.parameters())[i].view(-1)[-1] += 1
        assert h(m) != h(_net()), p.shape


def test_an_optimizer_step_changes_the_key() -> None:
    m = _net()
    before = h(m)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m(torch.randn(5, 4)).sum().backward()
    opt.step()
    assert h(m) != before


def test_load_state_dict_changes_the_key() -> None:
    m = _net()
    before = h(m)
    other = _net()
    with torch.no_grad():
        other[2].bias.fill_(7.0)
    m.load_state_dict(other.state_dict())
    assert h(m) != before
    assert h(m) == h(other)


def test_an_in_place_add_under_no_grad_changes_the_key() -> None:
    m = _net()
    before = h(m)
    with torch.no_grad():
        m[0].weight.add_(0.5)
    assert h(m) != before


def test_a_write_through_data_changes_the_key(route: str) -> None:
    m = _net()
    version = m[0].weight._version
    before = h(m)
    m[0].weight.data[0, 0] = 42.0
    assert m[0].weight._version == version  # torch's own counter does not see it
    assert h(m) != before


def test_gradients_are_in_the_key() -> None:
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))  # no running statistics
    no_grads = h(m)
    m(torch.randn(5, 4)).sum().backward()
    with_grads = h(m)
    assert with_grads != no_grads
    with torch.no_grad():
        m[0].weight.grad.mul_(2)  # type: ignore[union-attr]
    assert h(m) != with_grads
    m.zero_grad(set_to_none=True)
    assert h(m) == no_grads


def test_a_compiled_module_is_keyed_as_the_module_it_compiles() -> None:
    m = _net().eval()
    compiled = torch.compile(m)
    assert h(compiled) == h(torch.compile(m)) != h(m)
    compiled(torch.randn(5, 4))
    assert h(compiled) == h(torch.compile(m))
    with torch.no_grad():
        m[0].bias.add_(1)
    assert h(compiled) != h(torch.compile(_net().eval()))


def test_buffers_and_the_training_flag_are_in_the_key() -> None:
    m = _net()
    before = h(m)
    m.eval()
    assert h(m) != before
    m.train()
    assert h(m) == before
    m(torch.randn(5, 4))  # a training forward moves BatchNorm's running statistics
    assert h(m) != before


def test_a_non_persistent_buffer_is_in_the_key() -> None:
    a, b = torch.nn.Module(), torch.nn.Module()
    a.register_buffer("scale", torch.ones(2), persistent=False)
    b.register_buffer("scale", torch.ones(2) * 2, persistent=False)
    assert h(a) != h(b)


def test_a_plain_attribute_of_a_module_is_in_the_key() -> None:
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    b.load_state_dict(a.state_dict())
    assert h(a) == h(b)
    b.temperature = 0.5
    assert h(a) != h(b)


def _double(module: Any, inputs: Any, output: Any) -> Any:
    return output * 2


def test_a_forward_hook_is_in_the_key_and_its_handle_number_is_not() -> None:
    a, b = _net(), _net()
    for _ in range(3):  # the next handles are numbered further on
        torch.nn.Linear(1, 1).register_forward_hook(_double).remove()
    handle = a.register_forward_hook(_double)
    assert h(a) != h(b)
    b.register_forward_hook(_double)
    assert h(a) == h(b)
    handle.remove()
    assert h(a) == h(_net())


def test_a_global_module_hook_is_in_every_module_key() -> None:
    m = _net()
    before = h(m)
    handle = torch.nn.modules.module.register_module_forward_hook(_double)
    try:
        assert h(m) != before
    finally:
        handle.remove()
    assert h(m) == before


class Predictor:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    @memo
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)


def test_a_method_of_an_object_holding_a_model_misses_after_the_model_is_updated_in_place(counter: Counter) -> None:
    model = _net().eval()
    p = Predictor(model)
    x = torch.randn(5, 4)
    first = p.predict(x)
    assert torch.equal(p.predict(x), first)
    assert Predictor.predict.cache_info().hits == 1
    model[0].weight.data.mul_(2)
    second = p.predict(x)
    assert not torch.equal(second, first)
    assert Predictor.predict.cache_info().misses == 2


def test_a_module_defined_in_the_notebook_is_keyed_by_its_code(shell: Shell) -> None:
    shell.run("""
        import torch
        from notebook_memo import memo

        class Scale(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.ones(2))

            def forward(self, x):
                return x * self.w

        @memo
        def infer(model, x):
            return model(x).tolist()

        m = Scale()
        a = infer(m, torch.ones(2))
        a = infer(m, torch.ones(2))
        info = infer.cache_info()
    """)
    assert (shell["info"].hits, shell["info"].misses) == (1, 1)
    shell.run("""
        class Scale(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.ones(2))

            def forward(self, x):
                return x * self.w + 1

        b = infer(Scale(), torch.ones(2))
        info = infer.cache_info()
    """)
    assert (shell["info"].hits, shell["info"].misses) == (1, 2)
    assert shell["b"] == [2.0, 2.0]


_KEYS = """
import json, sys, warnings
warnings.simplefilter("ignore")
import torch
from notebook_memo.hashing import content_hash
sys.path.insert(0, {root!r})
from tests.test_torch_keys import _net, _double
for _ in range(int(sys.argv[1])):
    torch.nn.Linear(1, 1).register_forward_hook(_double)
m = _net()
m.register_forward_hook(_double)
x = torch.arange(24.0).reshape(2, 3, 4)
values = {{
    "module": m, "tensor": x, "strided": x.transpose(0, 2), "bf16": x.to(torch.bfloat16),
    "complex": torch.complex(x, -x).conj(), "sparse": x[0].to_sparse_csr(), "param": torch.nn.Parameter(x),
    "quantized": torch.quantize_per_tensor(x, 0.5, 2, torch.quint8), "dtype": torch.float16,
    "device": torch.device("cpu"), "size": torch.Size([2, 3]),
}}
from notebook_memo.hashing import _torch as _torch_hash
digests = {{k: content_hash(v).hex() for k, v in values.items()}}
digests["device digest"] = _torch_hash.device_digest(x.transpose(0, 1)).hex()
_torch_hash.digest_cpu_on_device = True  # the accelerators' route
digests.update({{"on a device: " + k: content_hash(v).hex() for k, v in values.items()}})
print(json.dumps(digests))
"""


def test_keys_of_tensors_and_modules_are_the_same_in_every_process(tmp_path: Path) -> None:
    script = tmp_path / "keys.py"
    script.write_text(_KEYS.format(root=ROOT))
    runs = []
    for seed, hooks in (("0", "0"), ("1", "5"), ("random", "2")):
        out = subprocess.run([sys.executable, str(script), hooks], capture_output=True, text=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=True)
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1] == runs[2]


def test_torch_dtypes_devices_and_sizes_are_keyed_by_what_they_are() -> None:
    assert h(torch.float16) != h(torch.bfloat16)
    assert h(torch.float16) == h(torch.half)
    assert h(torch.device("cpu")) != h(torch.device("meta"))
    assert h(torch.Size([2, 3])) != h(torch.Size([3, 2]))


def test_a_model_result_is_computed_once_across_kernel_restarts(cache_dir: Path) -> None:
    cells = ["""
import torch
from notebook_memo import memo
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
@memo
def infer(model, x):
    with torch.no_grad():
        return model(x)
y = infer(model, torch.ones(3, 8))
OUT["calls"] = infer.cache_info().misses
OUT["y"] = y.tolist()
"""]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["calls"] == 1 and second["calls"] == 0
    assert first["y"] == second["y"]


# -- the device digest (run here on the CPU: the same torch operations as on an accelerator) ---------


def test_device_digest_sees_every_byte_and_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.hashing import _torch as _torch_hash

    monkeypatch.setattr(_torch_hash, "_CHUNK_WORDS", 64)  # several chunks: positions carry across them
    base = torch.arange(77, dtype=torch.uint8)  # fewer bytes than one row: a zero-padded block
    seen = {_torch_hash.device_digest(base)}
    for k in range(base.numel()):
        for bit in (0, 7):
            changed = base.clone()
            changed[k] ^= 1 << bit
            seen.add(_torch_hash.device_digest(changed))
    swapped = base.clone()
    swapped[[0, 8]] = swapped[[8, 0]]  # the same bytes in another order
    seen.add(_torch_hash.device_digest(swapped))
    assert len(seen) == 1 + 2 * 77 + 1


def test_device_digest_of_many_rows_sees_a_change_anywhere() -> None:
    from notebook_memo.hashing._torch import device_digest

    base = torch.randint(0, 256, (20 * 4096 + 100,), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    key = device_digest(base)
    positions = [*range(0, base.numel(), 997), 4095, 4096, 16 * 4096, 20 * 4096 - 1, 20 * 4096, base.numel() - 1]
    digests = set()
    for k in positions:
        changed = base.clone()
        changed[k] ^= 0x80
        digests.add(device_digest(changed))
    assert key not in digests and len(digests) == len(positions)
    rows = base[: 20 * 4096].view(20, 4096)
    swapped = torch.cat([rows[[1, 0]], rows[2:]]).reshape(-1)
    assert device_digest(torch.cat([swapped, base[20 * 4096:]])) != key  # the same rows in another order


def test_the_sketch_weights_keep_every_element_s_change_visible() -> None:
    from notebook_memo.hashing._torch import sketch_weights

    weights = sketch_weights(torch.device("cpu")).to(torch.float64)
    # Any change within one aligned 16 bytes (an element of any dtype) moves its row's sums.
    ranks = {int(torch.linalg.matrix_rank(weights[i:i + 16])) for i in range(0, weights.shape[0], 16)}
    assert ranks == {16}


@pytest.mark.parametrize("n", [0, 5, 4096 * 17, 4096 * 17 + 3, 4096 * 40 + 1000])
def test_device_digest_is_the_same_through_the_int8_matmul_and_the_float64_route(n: int,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    from notebook_memo.hashing import _torch as _torch_hash

    data = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))
    through_int8 = _torch_hash.device_digest(data)
    monkeypatch.setattr(_torch_hash, "use_int_mm", False)
    monkeypatch.setattr(_torch_hash, "_SKETCH_ROWS", 7)
    assert _torch_hash.device_digest(data) == through_int8


def test_a_value_s_device_tensors_are_digested_together_once_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.hashing import _torch as _torch_hash

    monkeypatch.setattr(_torch_hash, "digest_cpu_on_device", True)
    finished: list[int] = []
    digest = _torch_hash.sketches_digest

    def counting(sketches: list[Any]) -> bytes:
        finished.append(len(sketches))
        return digest(sketches)

    monkeypatch.setattr(_torch_hash, "sketches_digest", counting)
    m = _net()
    key = h(m)
    assert finished == [len(list(m.parameters())) + len(list(m.buffers()))]
    a, b = torch.arange(5000.0), torch.arange(5000.0) + 1
    assert len({h([a, b]), h([b, a]), h([a, a]), h({"x": [a, b]})}) == 4
    assert h([a, b]) == h([a.clone(), b.clone()])
    assert h({1: a, 2: {b, 3}}) == h({1: a.clone(), 2: {b.clone(), 3}})  # in a set: a sub-digest of its own
    assert h(m) == key


def test_device_digest_reads_the_c_order_bytes_of_any_view() -> None:
    from notebook_memo.hashing._torch import device_digest

    base = torch.arange(4000, dtype=torch.float32).reshape(40, 100)
    assert device_digest(base.T) == device_digest(base.T.contiguous())
    assert device_digest(base.view(torch.uint8)[0, 3:50]) == device_digest(base.view(torch.uint8)[0, 3:50].clone())
    assert device_digest(base) == device_digest(base.view(torch.int32))  # bytes: the dtype is keyed beside it
    assert device_digest(base) != device_digest(base.T)


def test_device_digest_wraps_instead_of_overflowing() -> None:
    from notebook_memo.hashing._torch import device_digest

    extreme = torch.tensor([2**63 - 1, -(2**63), -1, 0] * 1000, dtype=torch.int64)
    assert device_digest(extreme) == device_digest(extreme.clone())
    assert device_digest(extreme) != device_digest(extreme.flip(0))


# -- neighbours found by review --------------------------------------------------------------------


def test_sparse_components_are_keyed_with_their_shapes(route: str) -> None:
    a = torch.sparse_coo_tensor([[1, 0], [2, 1]], [5.0, 7.0], (3, 3))
    b = torch.sparse_coo_tensor([[1, 0, 2], [1, 0, 0]], [5.0, 7.0, 0.0], (3, 3))
    assert h(a) != h(b)
    zero = torch.zeros(4, 4)
    blocks = {h(zero.to_sparse_bsr(size)) for size in ((2, 2), (2, 1), (1, 1), (4, 4))}
    assert len(blocks) == 4


def test_a_parameter_shared_by_two_layers_is_another_key_than_two_equal_ones(route: str) -> None:
    torch.manual_seed(0)
    tied = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False))
    tied[1].weight = tied[0].weight
    untied = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False))
    untied.load_state_dict(tied.state_dict())
    assert len(list(tied.parameters())) != len(list(untied.parameters()))
    assert h(tied) != h(untied)
    t = torch.ones(3)
    assert h([t, t]) != h([t, t.clone()])
    assert h([t, t]) == h([t.clone()] * 2)


def test_gradient_hooks_on_a_tensor_are_in_the_key(route: str) -> None:
    def scale(g: torch.Tensor) -> torch.Tensor:
        return g * 100

    plain, hooked = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    handle = hooked.register_hook(scale)
    assert h(hooked) != h(plain)
    handle.remove()
    assert h(hooked) == h(plain)
    hooked.register_post_accumulate_grad_hook(lambda p: None)
    assert h(hooked) != h(plain)


def test_a_gradient_left_on_a_tensor_that_no_longer_requires_grad_is_in_the_key(route: str) -> None:
    m = torch.nn.Linear(2, 2)
    fresh = torch.nn.Linear(2, 2)
    fresh.load_state_dict(m.state_dict())
    m(torch.ones(1, 2)).sum().backward()
    m.requires_grad_(False)
    fresh.requires_grad_(False)
    assert h(m) != h(fresh)


class Tap(torch.nn.Module):
    def __init__(self, taps: dict[int, float]) -> None:
        super().__init__()
        self.tap_hooks = taps  # the user's own dict: its keys are content

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * sum(k * v for k, v in self.tap_hooks.items())


def test_a_dict_of_the_user_s_named_like_torch_s_hooks_keeps_its_keys() -> None:
    assert h(Tap({1: 2.0})) != h(Tap({3: 2.0}))


def test_a_compiled_call_does_not_change_the_key_of_the_model_it_ran() -> None:
    m = _net().eval()
    before_plain, before_compiled = h(m), h(torch.compile(m))
    compiled = torch.compile(m, backend="eager")
    with torch.no_grad():
        compiled(torch.randn(5, 4))
    assert h(m) == before_plain
    assert h(compiled) == before_compiled


@pytest.mark.parametrize("kind", [torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM])
def test_recurrent_layers_are_keyed_by_their_weights(kind: type, route: str) -> None:
    torch.manual_seed(0)
    a = kind(4, 3)
    torch.manual_seed(0)
    b = kind(4, 3)
    assert h(a) == h(b)
    with torch.no_grad():
        b.weight_hh_l0[0, 0] += 1
    assert h(a) != h(b)


def test_a_tensor_subclass_that_flattens_to_inner_tensors_is_keyed_by_them(route: str) -> None:
    from torch.testing._internal.two_tensor import TwoTensor

    x, y = torch.arange(4.0), torch.ones(4)
    assert h(TwoTensor(x, y)) == h(TwoTensor(x.clone(), y.clone()))
    assert h(TwoTensor(x, y)) != h(TwoTensor(x, y * 2))
    assert h(TwoTensor(x, y)) != h(TwoTensor(y, x))


# -- neighbours found by a review of every surface -------------------------------------------------


def test_a_module_keys_the_same_after_a_pickle_round_trip_that_reorders_its_attributes() -> None:
    import pickle

    for kind in (torch.nn.GRU, torch.nn.LSTM, torch.nn.Linear):
        torch.manual_seed(0)
        m = kind(4, 8)
        back = pickle.loads(pickle.dumps(m))
        assert h(back) == h(m), kind


class Scorer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    @memo.cached_property
    def size(self) -> int:
        return 2

    @memo.per_instance
    def scaled(self, k: float) -> torch.Tensor:
        return self.w.detach() * k


def test_a_module_s_own_per_instance_caches_are_not_its_content() -> None:
    a, b = Scorer(), Scorer()
    assert h(a) == h(b)
    assert a.size == 2
    a.scaled(3.0)
    assert h(a) == h(b)


def test_torch_s_default_dtype_and_device_are_in_the_key_of_code_that_uses_torch() -> None:
    @memo
    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n)

    assert zeros(3).dtype == torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert "the settings of torch changed (torch.float32 " in str(zeros.explain(3))
        assert zeros(3).dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert zeros(3).dtype == torch.float32
    assert zeros.cache_info().hits == 1 and zeros.cache_info().misses == 2


def test_torch_s_settings_are_read_once_per_call_however_often_the_body_uses_torch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _dependencies

    @memo
    def stack(n: int) -> torch.Tensor:
        a, b = torch.zeros(n), torch.ones(n)
        return torch.cat([a, b, torch.nn.functional.relu(a)])

    stack(2)
    reads: list[int] = []
    settings = _dependencies._PACKAGE_STATE["torch"]
    counted = lambda: reads.append(1) or settings()  # noqa: E731
    monkeypatch.setitem(_dependencies._PACKAGE_STATE, "torch", counted)  # read when a function is resolved
    monkeypatch.setitem(_dependencies._STATE_PROBES, "torch", counted)  # read when a resolution is checked
    stack(2)
    assert stack.cache_info().hits == 1 and len(reads) == 1


# -- torch's process-wide state around a call (found by a review) -----------------------------------------


def test_the_per_backend_float32_precision_is_keyed_and_does_not_break_calls(counter: Counter) -> None:
    # torch.get_float32_matmul_precision() raises once the per-backend API has been used: every call
    # of a function using torch raised with it.
    @memo
    def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        counter()
        return torch.matmul(a, b)

    a, b = torch.ones(8, 8), torch.ones(8, 8)
    mm(a, b)
    previous = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        assert "mkldnn.matmul=bf16" in str(mm.explain(a, b))
        mm(a, b)
        assert counter.n == 2
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = previous
    mm(a, b)
    assert counter.n == 2  # back to the first entry


@pytest.mark.filterwarnings("ignore:.*autograd graph")
@pytest.mark.parametrize("context", ["autocast", "no_grad", "inference_mode", "mode"])
def test_a_call_under_another_torch_context_is_another_key(context: str, counter: Counter) -> None:
    from torch.overrides import TorchFunctionMode

    class Double(TorchFunctionMode):  # a user's mode, which changes what an operation returns
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            return out * 2 if func is torch.matmul else out

    contexts = {"autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16), "no_grad": torch.no_grad,
                "inference_mode": torch.inference_mode, "mode": Double}
    w = torch.nn.Parameter(torch.ones(4, 4))

    @memo
    def f(x: torch.Tensor) -> torch.Tensor:
        counter()
        return torch.matmul(x, w)

    x = torch.ones(4, 4)
    f(x)
    with contexts[context]():
        plain = torch.matmul(x, w)
        got = f(x)
    assert counter.n == 2
    assert (got.dtype, got.requires_grad, got.tolist()) == (plain.dtype, plain.requires_grad, plain.tolist())
    again = f(x)
    assert counter.n == 2 and again.requires_grad and again.dtype == torch.float32


def test_default_dtype_counts_for_a_body_that_never_names_torch(counter: Counter) -> None:
    from torch import tensor

    @memo
    def halves(x: torch.Tensor) -> torch.Tensor:  # an int tensor divided: the default dtype
        counter()
        return x / 2

    @memo
    def make() -> torch.Tensor:
        counter()
        return tensor([0.1])  # torch.tensor imported by name

    x = torch.arange(3)
    assert halves(x).dtype == make().dtype == torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert halves(x).dtype == make().dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert counter.n == 4


def test_arguments_over_one_memory_are_not_keyed_like_copies(counter: Counter) -> None:
    import numpy as np

    def first_byte(x: Any) -> int:
        return int(x.data_ptr()) if isinstance(x, torch.Tensor) else int(x.ctypes.data)

    @memo
    def where(a: Any, b: Any) -> int:  # what a write through one would show in the other: 0 for none
        counter()
        shares = np.shares_memory(np.asarray(a), np.asarray(b))
        return 1 + first_byte(b) - first_byte(a) if shares else 0

    for make in (torch.zeros, np.zeros):
        def copy(x: Any) -> Any:
            return x.clone() if isinstance(x, torch.Tensor) else x.copy()

        a = make(4)
        assert where(a, a[:2]) == 1  # a view at its start
        b = make(4)
        assert where(b, copy(b[:2])) == 0
        c = make(4)
        size = c.itemsize if isinstance(c, np.ndarray) else c.element_size()
        assert where(c, c[1:3]) == 1 + size  # a view elsewhere in it
        d = make(4)
        assert where(d, d[:2]) == 1  # a hit
    assert counter.n == 6

    @memo
    def tied(m: torch.nn.Module, w0: torch.Tensor) -> bool:
        counter()
        return bool(m.weight.untyped_storage().data_ptr() == w0.untyped_storage().data_ptr())

    m = torch.nn.Linear(2, 2)
    assert tied(m, m.weight.detach().clone()) is False
    assert tied(m, m.weight.detach()) is True  # a detached weight is the weight's memory
    assert counter.n == 8


def test_a_lazy_module_before_its_first_call_and_torch_s_type_infos_are_keyed() -> None:
    torch.manual_seed(0)
    lazy = torch.nn.Sequential(torch.nn.LazyLinear(3), torch.nn.ReLU())
    assert h(lazy) == h(lazy)
    assert h(torch.nn.LazyLinear(3)) != h(torch.nn.LazyLinear(4))
    assert h(torch.nn.LazyLinear(3, dtype=torch.float64)) != h(torch.nn.LazyLinear(3))
    key = h(lazy)
    lazy(torch.ones(2, 5))  # materialized: now its weights count
    assert h(lazy) != key
    assert h(torch.finfo(torch.float32)) != h(torch.finfo(torch.float64))
    assert h(torch.iinfo(torch.int8)) == h(torch.iinfo(torch.int8)) != h(torch.iinfo(torch.int16))


def test_the_device_digest_works_inside_a_device_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.hashing import _torch as _torch_hash

    monkeypatch.setattr(_torch_hash, "digest_cpu_on_device", True)
    monkeypatch.setattr(_torch_hash, "_weights", {})  # made afresh inside the context
    x = torch.arange(10.0)
    with torch.device("meta"):
        inside = h(x)
    assert inside == h(x)


def test_switching_grad_mode_between_calls_resolves_no_code_and_explain_names_it(counter: Counter) -> None:
    from notebook_memo import _dependencies

    @memo(ignore=["tally"])
    def project(x: torch.Tensor, w: torch.Tensor, tally: Counter) -> torch.Tensor:  # no mutable global or closure
        tally()
        return torch.matmul(x, w)

    x, w = torch.ones(2, 2), torch.nn.Parameter(torch.ones(2, 2))
    project(x, w, counter)
    with torch.no_grad():
        project(x, w, counter)
    resolved: list[int] = []
    real = _dependencies.CodeTracker._resolve

    def counting(self: Any, resolver: Any) -> Any:
        resolved.append(1)
        return real(self, resolver)

    _dependencies.CodeTracker._resolve = counting  # type: ignore[method-assign]
    try:
        for _ in range(3):
            project(x, w, counter)
            with torch.no_grad():
                project(x, w, counter)
    finally:
        _dependencies.CodeTracker._resolve = real  # type: ignore[method-assign]
    # Both entries hit, and the code was not resolved again (grad mode was a watched setting: each switch
    # made the whole resolution run again).
    assert counter.n == 2 and resolved == []
    with torch.inference_mode():
        report = str(project.explain(x, w, counter))
    assert "torch's modes changed (cpu no_grad -> cpu no_grad inference_mode)" in report
