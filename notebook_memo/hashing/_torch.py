"""torch values hashed by content: tensors of every layout (on their own device) and modules.

A tensor's key holds its class, dtype, layout, shape, device and ``requires_grad``, any attributes
set on it, and all of its content: the C-order bytes of a strided tensor (conjugate and negative views
as the values they read as), the stored structure of a sparse one, the integers, scheme and scales of
a quantized one, the components of a nested one. Tensors on a CPU are streamed into xxh3 where they
lie; tensors on an accelerator are digested there (:func:`device_digest`), so only 16 bytes cross to
the host. A tensor an autograd graph made is refused: the graph is part of what it means. A module is
its class (by code), its whole state (parameters, buffers, submodules, plain attributes, the training
flag) and its hooks, re-read on every call: in-place updates through
``.data`` do not move torch's version counters, so no remembered digest could be proven current.
"""

from __future__ import annotations

import collections
import struct
import sys
from typing import Any

from ._core import (
    BOOKKEEPING_PREFIX,
    Hasher,
    HashFn,
    _Unhashable,
    feed_slot_values,
    h_library_class,
    own_state,
    qualified_name,
    register_family,
    things_met,
)
from ._numpy import feed_array_bytes

__all__ = ()

_MASK64 = (1 << 64) - 1


def _signed(n: int) -> int:
    """Return a 64-bit constant as the int64 torch computes with (the same bits)."""
    n &= _MASK64
    return n - (1 << 64) if n >= 1 << 63 else n


# Position weight and mixing constants (odd; splitmix64's finalizer, a bijection of 64-bit words).
_STEP = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)
_MIX3 = _signed(0xD6E8FEB86659FD93)
_CHUNK_WORDS = 1 << 22  # sketch words mixed at a time: the temporaries stay a bounded size
_pack_lanes = struct.Struct("<qq").pack


def torch_path(cls: type) -> HashFn | None:
    """Return the handler for a torch class (or a subclass of one defined anywhere), if it has one."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if issubclass(cls, torch.Tensor):
        return _h_tensor
    if issubclass(cls, torch.nn.Module):
        return _h_module
    if cls is torch.finfo or cls is torch.iinfo:
        return _h_type_info
    if issubclass(cls, torch.autocast):
        return _h_autocast
    return None


def _h_autocast(h: Hasher, v: Any) -> None:
    """torch.autocast (a decorator's settings): its device, dtype and flags. Not what entering it saves to put
    back on exit (``prev``, ``prev_fastdtype``...): a use adds those, and a key must not change with it."""
    h.tag(b"ta")
    h.child(type(v), "<class>")
    h.child({name: value for name, value in sorted(vars(v).items()) if not name.startswith("prev")}, "<settings>")


def _h_type_info(h: Hasher, v: Any) -> None:
    """torch.finfo / torch.iinfo: fixed by their dtype (they cannot be pickled)."""
    h.tag(b"ti")
    h.text(qualified_name(type(v)))
    h.text(str(v.dtype))


# -- tensors -----------------------------------------------------------------------------------------

_TORCH_CLASSES = frozenset({"torch.Tensor", "torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer"})


def _h_tensor(h: Hasher, v: Any) -> None:
    things_met.torch = True  # what torch computes from it depends on torch's settings: the caller keys them
    if h.seen_before(v):
        return  # the same tensor again (a tied weight): a reference back, not its content twice
    h.saw_view(v)
    try:
        _h_tensor_parts(h, v)
    except (_Unhashable, RecursionError):
        raise
    except Exception as exc:  # e.g. a wrapper subclass whose operations are not implemented
        raise _Unhashable(v, f"its data cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None


# Attributes torch.compile sets on the modules and tensors it has run with: bookkeeping, not content.
_COMPILE_MARKS = ("_dynamo", "_torchdynamo", "_is_torch_compile")
# What a leaf runs when a gradient reaches it (register_hook, register_post_accumulate_grad_hook).
_GRAD_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")


def _h_tensor_parts(h: Hasher, v: Any) -> None:
    cls = type(v)
    name = qualified_name(cls)
    if isinstance(v, sys.modules["torch"].nn.parameter.UninitializedTensorMixin):
        # A lazy module's parameter before its first forward: no shape or data yet, only what it will be.
        h.tag(b"tu")
        h.text(name)
        h.text(f"{v.dtype} {v.device} {v.requires_grad}")
        return
    grad_fn = v.grad_fn
    if grad_fn is not None:
        # What a body differentiates through it depends on the graph that made it (W * 2 and W + 1 are
        # both 2), which cannot be keyed by content.
        raise _Unhashable(v, f"it carries an autograd graph (grad_fn={type(grad_fn).__name__}), which a key "
                          "cannot hold; pass .detach() of it if the body does not differentiate through it, or "
                          "the leaf tensors it is computed from and compute it inside")
    h.tag(b"tt")
    nested = v.is_nested
    if name in _TORCH_CLASSES or nested:
        h_library_class(h, cls)  # by name, and what the notebook patched into it (torch.Tensor.mine = f)
    else:
        h.child(cls, "<class>")  # a subclass of the user's: its code
    h.text(str(v.dtype))
    h.text(str(v.layout))
    device = v.device
    h.text("cpu" if device.type == "cpu" else str(device))  # a hit restores a result to the same device
    h.tag(b"g1" if v.requires_grad else b"g0")
    if nested:
        # A jagged one is torch's own subclass, whose attributes hold ids of its symbolic sizes.
        h.child(list(v.detach().unbind()), "<components>")
        return
    flatten = None if name in _TORCH_CLASSES else getattr(v, "__tensor_flatten__", None)
    if flatten is not None:
        # A wrapper subclass (torch's protocol for them): its inner tensors and what rebuilds it from them.
        inner, context = flatten()
        h.child(context, "<__tensor_flatten__ context>")
        for attribute in inner:
            h.child(getattr(v, attribute), f".{attribute}")
    else:
        attributes = own_state(h, v, v.__dict__)
        if attributes:
            attributes = {k: a for k, a in attributes.items() if not k.startswith(_COMPILE_MARKS)}
        if attributes:
            h.child(attributes, "<attributes>")
        feed_slot_values(h, v, sys.modules["torch"].Tensor)
        _h_content(h, v)
    if v.is_leaf:
        if v.grad is not None:
            h.tag(b"tg")  # read by what takes it (an optimizer step, a gradient norm), requires_grad or not
            h.child(v.grad, ".grad")
        for hooks_name in _GRAD_HOOKS:
            hooks = getattr(v, hooks_name, None)
            if hooks:
                h.child(list(hooks.values()), f".{hooks_name}")


def _h_content(h: Hasher, v: Any) -> None:
    torch = sys.modules["torch"]
    layout = v.layout
    h.tag(repr(tuple(v.shape)).encode())
    if v.is_quantized:
        _h_quantized(h, v)
    elif layout is torch.strided:
        _h_dense(h, v)
    elif layout is torch.sparse_coo:
        h.tag(b"c1" if v.is_coalesced() else b"c0")
        h.tag(repr(v.sparse_dim()).encode())
        _h_dense(h, v._indices())
        _h_dense(h, v._values())
    elif layout in (torch.sparse_csr, torch.sparse_bsr):
        _h_dense(h, v.crow_indices())
        _h_dense(h, v.col_indices())
        _h_dense(h, v.values())
    elif layout in (torch.sparse_csc, torch.sparse_bsc):
        _h_dense(h, v.ccol_indices())
        _h_dense(h, v.row_indices())
        _h_dense(h, v.values())
    else:
        raise _Unhashable(v, f"it is a tensor of layout {layout}, whose content notebook_memo cannot read; "
                             "pass it as a strided tensor (.to_dense()) or register_hasher for it")


def _h_quantized(h: Hasher, v: Any) -> None:
    torch = sys.modules["torch"]
    scheme = v.qscheme()
    h.text(str(scheme))
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        h.tag(struct.pack("<dq", v.q_scale(), v.q_zero_point()))
    elif scheme in (torch.per_channel_affine, torch.per_channel_symmetric, torch.per_channel_affine_float_qparams):
        h.tag(struct.pack("<q", v.q_per_channel_axis()))
        _h_dense(h, v.q_per_channel_scales())
        _h_dense(h, v.q_per_channel_zero_points())
    else:
        raise _Unhashable(v, f"it is a quantized tensor of scheme {scheme}, which notebook_memo cannot read")
    _h_dense(h, v.int_repr())


digest_cpu_on_device = False  # True: CPU tensors take the accelerators' route too (the tests run it here)
_SAME_SIZE_INT = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def is_plain_tensor(t: Any) -> bool:
    """Return True for a strided tensor of torch's own classes (Tensor, Parameter): its elements are all."""
    torch = sys.modules["torch"]
    return (type(t) in (torch.Tensor, torch.nn.Parameter) and t.layout is torch.strided
            and not t.is_quantized and not t.is_nested)


def resolved(t: Any) -> Any:
    """Return ``t`` detached, with a conjugate or negative view's lazy bit applied (the values it reads as)."""
    t = t.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    return t


def numpy_bits(t: Any) -> Any:
    """Return a resolved CPU tensor's elements as a numpy array of same-size integers (a complex one as
    pairs), sharing its memory: numpy has no bfloat16 or float8, and its bytes are what count."""
    torch = sys.modules["torch"]
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.view(getattr(torch, _SAME_SIZE_INT[t.element_size()])).numpy()


def _h_dense(h: Hasher, t: Any) -> None:
    """Feed a strided tensor's dtype, shape and content: its C-order bytes, or its device digest off the CPU."""
    h.text(str(t.dtype))
    h.tag(repr(tuple(t.shape)).encode())
    t = resolved(t)
    device = t.device.type
    if device == "meta":
        h.tag(b"m")  # no content: shape and dtype are all there is
        return
    if device != "cpu" or digest_cpu_on_device:
        h.tag(b"d")
        h.defer(sketches_digest, device_sketch(t))  # one transfer to the host for all of a value's tensors
        return
    feed_array_bytes(h, numpy_bits(t))


def device_digest(t: Any) -> bytes:
    """Return 16 bytes that digest a tensor's C-order bytes, computed where the tensor lies.

    Two stages, both exact integer arithmetic, so the same bytes give the same digest on any device
    and in any process, whatever order a reduction runs in:

    1. A sketch, one pass over the bytes as a tensor-core matmul: each row of 4,096 bytes (as int8)
       times a fixed 4,096 x 16 matrix of odd int8 weights gives 16 int32 sums (exact: they cannot
       overflow). Every aligned 16-row block of the weights has full rank (a test checks all 256), so
       any change confined to an aligned 16 bytes (one element of any dtype) changes its row's sums.
    2. A mix of the sketch's 64-bit words: the word ``w`` at position ``i`` becomes
       ``mix(w + i * STEP)`` (splitmix64's finalizer, a bijection: any change to one word changes its
       term), summed in two lanes with wrapping integer sums.

    The last partial row, and a tensor of fewer than 17 rows (torch's int8 matmul wants more than
    16), is zero-padded: the byte length is in the key beside the digest, so padding is unambiguous.
    """
    return sketches_digest([device_sketch(t)])


def device_sketch(t: Any) -> Any:
    """Return stage 1 of :func:`device_digest`: the int32 sketch of ``t``'s bytes, on ``t``'s device."""
    torch = sys.modules["torch"]
    flat = t.detach().contiguous().reshape(-1)
    raw = flat if flat.dtype is torch.uint8 else flat.view(torch.uint8)
    rows = raw.numel() // _ROW
    blocks = []
    if rows >= _MIN_ROWS:
        blocks.append(_sketch(raw[:rows * _ROW].view(torch.int8).reshape(rows, _ROW)))
    else:
        rows = 0
    rest = raw[rows * _ROW:]
    if rest.numel() or not blocks:
        padded = torch.zeros(_MIN_ROWS * _ROW, dtype=torch.uint8, device=raw.device)
        padded[:rest.numel()] = rest
        blocks.append(_sketch(padded.view(torch.int8).reshape(_MIN_ROWS, _ROW)))
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


def sketches_digest(sketches: list[Any]) -> bytes:
    """Return stage 2 of :func:`device_digest` for tensors met in this order: 16 bytes per run of them
    on one device (their sketches mixed as one), after the number of runs; one transfer per run."""
    torch = sys.modules["torch"]
    runs: list[list[Any]] = []
    for sketch in sketches:
        if runs and runs[-1][0].device == sketch.device:
            runs[-1].append(sketch)
        else:
            runs.append([sketch])
    lanes = []
    for run in runs:
        words = (run[0] if len(run) == 1 else torch.cat([s.reshape(-1) for s in run])).reshape(-1)
        lanes.append(_mixed_sums(words.view(torch.int64)))
    out = [struct.pack("<q", len(runs))]
    for pair in lanes:
        low, high = (int(n) for n in pair.cpu().tolist())
        out.append(_pack_lanes(low, high))
    return b"".join(out)


_ROW = 4096  # bytes per row of the sketch
_WIDTH = 16  # int32 sums per row: the sketch is 64 times smaller than the bytes
_MIN_ROWS = 17
_SKETCH_ROWS = 1 << 14  # rows at a time where the matmul runs in float64
_weights: dict[Any, Any] = {}
use_int_mm = True  # False: the float64 route only (tests compare the two)


def sketch_weights(device: Any) -> Any:
    """Return the fixed 4,096 x 16 int8 weights (odd, from splitmix64 of their positions) on ``device``."""
    torch = sys.modules["torch"]
    weights = _weights.get(device)
    if weights is None:
        x = torch.arange(_ROW * _WIDTH, dtype=torch.int64, device="cpu")  # not the default device (meta?)
        x.mul_(_STEP).add_(_MIX3)
        _mix(x)
        odd = (x.bitwise_and_(0xFF).bitwise_or_(1)).to(torch.uint8).view(torch.int8)
        weights = _weights[device] = odd.reshape(_ROW, _WIDTH).to(device)
    return weights


def _sketch(rows: Any) -> Any:
    """Return each row's 16 int32 sums of its bytes times the weights."""
    torch = sys.modules["torch"]
    weights = sketch_weights(rows.device)
    if use_int_mm:
        try:
            return torch._int_mm(rows, weights)
        except (RuntimeError, NotImplementedError):
            pass  # a device or build without int8 matmuls: the same sums in float64
    try:
        return _sketch_in_float64(rows, weights)
    except (RuntimeError, TypeError, NotImplementedError):
        if rows.device.type == "cpu":
            raise
        return _sketch(rows.cpu()).to(rows.device)  # a device without float64 (Apple's MPS): the same sums


def _sketch_in_float64(rows: Any, weights: Any) -> Any:
    # |sum| <= 4,096 * 128 * 127 < 2**31, and float64 holds every such integer exactly in any order.
    torch = sys.modules["torch"]
    double = weights.to(torch.float64)
    out = torch.empty(rows.shape[0], _WIDTH, dtype=torch.int32, device=rows.device)
    for start in range(0, rows.shape[0], _SKETCH_ROWS):
        part = rows[start:start + _SKETCH_ROWS].to(torch.float64)
        out[start:start + _SKETCH_ROWS] = (part @ double).to(torch.int32)
    return out


def _mixed_sums(words: Any) -> Any:
    """Return two int64 lanes: the wrapping sums of ``mix(w + i * STEP)`` and of a second bijection of it."""
    torch = sys.modules["torch"]
    lanes = torch.zeros(2, dtype=torch.int64, device=words.device)
    for start in range(0, words.numel(), _CHUNK_WORDS):
        chunk = words[start:start + _CHUNK_WORDS]
        x = torch.arange(start, start + chunk.numel(), dtype=torch.int64, device=words.device)
        x.mul_(_STEP).add_(chunk)
        _mix(x)
        lanes[0] += x.sum()
        x.mul_(_MIX3)
        _xorshift(x, 29)
        lanes[1] += x.sum()
    return lanes


def _mix(x: Any) -> None:
    """splitmix64's finalizer in place: a bijection of 64-bit words."""
    _xorshift(x, 30)
    x.mul_(_MIX1)
    _xorshift(x, 27)
    x.mul_(_MIX2)
    _xorshift(x, 31)


def _xorshift(x: Any, shift: int) -> None:
    """``x ^= x >> shift`` in place, the shift logical (torch shifts int64 arithmetically)."""
    torch = sys.modules["torch"]
    shifted = torch.bitwise_right_shift(x, shift)
    shifted.bitwise_and_((1 << (64 - shift)) - 1)
    x.bitwise_xor_(shifted)


# -- modules -----------------------------------------------------------------------------------------

# A module's own hook dicts (handle number -> hook, or -> flag), by torch's names for them.
_MODULE_HOOKS = frozenset({
    "_backward_hooks", "_backward_pre_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
})
# Module-wide hooks that change what any module's forward or backward returns.
_GLOBAL_HOOKS = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_forward_hooks_with_kwargs",
                 "_global_forward_hooks_always_called", "_global_backward_pre_hooks", "_global_backward_hooks")


_COMPILED = "torch._dynamo.eval_frame.OptimizedModule"


def _h_module(h: Hasher, v: Any) -> None:
    things_met.torch = True
    if qualified_name(type(v)) == _COMPILED:
        # torch.compile's wrapper computes what the module it wraps computes; its own state (guards,
        # caches, a new context per compile) changes with every compile and every call.
        h.tag(b"tc")
        h.child(v._orig_mod, "._orig_mod")
        return
    h.tag(b"tm")
    h.child(type(v), "<class>")
    try:
        # By name: the order of a module's attributes is not its behaviour, and unpickling an RNN puts
        # them in another order than its __init__ did.
        state = dict(sorted((own_state(h, v, vars(v)) or {}).items()))
    except TypeError:
        raise _Unhashable(v, "its state cannot be read (no __dict__)") from None
    _canonical_state(state)
    for name in _recomputed_before_forward(v):
        state.pop(name, None)
    h.child(state, "<state>")
    module = sys.modules["torch.nn.modules.module"]
    feed_slot_values(h, v, module.Module)
    installed = {name: hooks for name in _GLOBAL_HOOKS if (hooks := getattr(module, name, None))}
    if installed:
        _canonical_state(installed)
        h.child(installed, "<global hooks>")
    else:
        h.tag(b"-")  # none: the common case, fed without a walk


# Forward pre-hooks of torch's older weight reparametrizations: each sets the attribute it names (``weight``)
# to a tensor computed, with an autograd graph, from the module's own parameters and buffers (``weight_g`` and
# ``weight_v``; ``weight_orig``, ``weight_u``, ``weight_v``), at once and again before every forward.
_RECOMPUTING_HOOKS = frozenset({"torch.nn.utils.weight_norm.WeightNorm", "torch.nn.utils.spectral_norm.SpectralNorm"})


def _recomputed_before_forward(v: Any) -> list[str]:
    """Return the attributes of module ``v`` that a weight-norm or spectral-norm hook recomputes.

    They are left out of its key: what they hold derives from the parameters and buffers the key holds, and
    the hook (keyed too) computes them anew before every forward. Keyed, their autograd graph made the module
    refused, and a value left stale by a training step in place made the next forward look like a change.
    """
    hooks = vars(v).get("_forward_pre_hooks")
    if not hooks:
        return []
    return [hook.name for hook in hooks.values()
            if qualified_name(type(hook)) in _RECOMPUTING_HOOKS and type(getattr(hook, "name", None)) is str]


def _canonical_state(state: dict[str, Any]) -> None:
    """Put a module's state (or torch's module-wide hooks) in the form its behaviour depends on, in place.

    The marks torch.compile leaves and our own per-instance caches are left out. Hook dicts lose their
    handle numbers (a process-wide counter: two equal modules whose hooks were registered after
    different amounts of other work get the same key) and keep their order, and empty ones are left
    out; torch's ordered dicts become plain ones, which keep their order too.
    """
    numbers: set[int] = set()
    hooks = []
    for name, value in list(state.items()):
        if name.startswith(_COMPILE_MARKS) or name.startswith(BOOKKEEPING_PREFIX):
            del state[name]  # compiling's marks, and our own per-instance caches: not content
        elif (name in _MODULE_HOOKS or name in _GLOBAL_HOOKS) and isinstance(value, dict):
            if not value:
                del state[name]
                continue
            hooks.append(name)
            numbers.update(k for k in value if type(k) is int)
        elif type(value) is collections.OrderedDict:
            state[name] = dict(value)
    rank = {n: i for i, n in enumerate(sorted(numbers))}
    for name in hooks:
        state[name] = [(rank.get(k, k), value) for k, value in state[name].items()]


register_family("torch", torch_path, anywhere=True)
