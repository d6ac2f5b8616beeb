"""torch tensors in results: written out of band straight from their memory, restored as they were.

A strided tensor of torch's own classes pickles as its bytes (a protocol-5 buffer, written to the
payload file without a copy into the pickle) and what rebuilds it: dtype, shape, strides when its
elements fill their span (contiguous, transposed, channels-last), device and ``requires_grad``. A
tensor off the CPU is staged through pinned host memory. On load the tensor is made over the bytes
read from the file (no further copy) and moved to its device; a device this machine lacks gives a
CPU tensor and one warning. Other tensors (sparse, quantized, nested, subclasses, tensors carrying
attributes) keep torch's own pickling.
"""

from __future__ import annotations

import mmap
import pickle
import sys
import threading
import warnings
from typing import Any

from ._errors import MemoWarning
from .hashing import is_plain_tensor, numpy_bits, resolved

__all__ = ()

_warned_devices: set[str] = set()
_warned_lock = threading.Lock()
_warned_graph = False  # the autograd-graph warning is given once per process


def device_of(t: Any) -> str:
    """Return the device a tensor is restored to (a test stands a missing device in here)."""
    return str(t.device)


def reduce_tensor(t: Any) -> tuple[Any, ...] | None:
    """Return a pickle reduction of ``t`` that keeps its bytes out of band, or None to leave it to torch."""
    torch = sys.modules["torch"]
    cls = type(t)
    if t.grad_fn is not None:
        _warn_graph(t)
    if cls is not torch.Tensor and cls is not torch.nn.Parameter:
        return None
    if not is_plain_tensor(t) or t.__dict__:
        if cls is torch.Tensor and t.requires_grad and t.layout is not torch.strided:
            # torch's own pickling of a sparse tensor drops the flag: set it again on load.
            return with_requires_grad, (t.detach(),)
        return None
    device = device_of(t)
    if t.device.type == "meta":
        return None
    data = resolved(t)
    strides: tuple[int, ...] | None = None
    if data.is_contiguous():
        flat = data.reshape(-1)
    elif _fills_its_span(data.shape, data.stride()):
        # Its elements fill [offset, offset + numel) of its storage in some order: keep that order.
        strides = tuple(data.stride())
        flat = data.as_strided((data.numel(),), (1,), data.storage_offset())
    else:
        flat = data.contiguous().reshape(-1)
    if flat.device.type != "cpu":
        staged = torch.empty(flat.shape, dtype=flat.dtype, device="cpu", pin_memory=flat.is_cuda)
        staged.copy_(flat)
        flat = staged
    array = numpy_bits(flat).reshape(-1).view("uint8")
    grad = t.grad if t.is_leaf else None  # kept: keys read it, so a hit's value must carry it too
    return rebuild_tensor, (pickle.PickleBuffer(array), str(t.dtype).removeprefix("torch."), tuple(t.shape),
                            strides, device, bool(t.requires_grad), cls is torch.nn.Parameter, grad)


def with_requires_grad(t: Any) -> Any:
    """Return ``t`` requiring grad again (what torch's own pickling of a sparse tensor leaves out)."""
    return t.requires_grad_(True)


def _warn_graph(t: Any) -> None:
    global _warned_graph
    if _warned_graph:
        return
    _warned_graph = True
    warnings.warn(f"notebook_memo: a result holds a tensor with an autograd graph (grad_fn="
                  f"{type(t.grad_fn).__name__}); a hit returns it as a leaf without that graph, so a backward() "
                  "through it reaches no parameters. Return it detached, or compute it outside the memoized "
                  "function, if you train through it.", MemoWarning, stacklevel=2)


def _fills_its_span(shape: Any, strides: Any) -> bool:
    """Return True when the elements cover one contiguous span of memory exactly once, in some order."""
    expected = 1
    for stride, size in sorted((stride, size) for size, stride in zip(shape, strides) if size != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def rebuild_tensor(data: Any, dtype: str, shape: tuple[int, ...], strides: tuple[int, ...] | None,
                   device: str, requires_grad: bool, parameter: bool, grad: Any = None) -> Any:
    """Return the tensor :func:`reduce_tensor` saved, made over ``data`` where it can be."""
    import torch

    view = memoryview(data).cast("B")
    if view.readonly:
        view = _writable(view)
    flat = torch.frombuffer(view, dtype=torch.uint8) if view.nbytes else torch.empty(0, dtype=torch.uint8, device="cpu")
    t = flat.view(getattr(torch, dtype))
    t = t.as_strided(shape, strides) if strides is not None else t.reshape(shape)
    if device != "cpu":
        t = _to_device(t, device)
    if parameter:
        t = torch.nn.Parameter(t, requires_grad=requires_grad)
    elif requires_grad:
        t.requires_grad_(True)
    if grad is not None:
        t.grad = grad.to(t.device) if grad.device != t.device else grad
    return t


def _writable(view: memoryview) -> memoryview:
    """Return writable memory with ``view``'s bytes: the same pages of a copy-on-write map, else a copy."""
    base = view.obj
    if isinstance(base, mmap.mmap):
        np = sys.modules.get("numpy")
        if np is not None:
            try:
                whole = np.frombuffer(base, dtype=np.uint8)
            except (TypeError, ValueError):  # a read-only map: not ours to write through
                whole = None
            if whole is not None and whole.flags.writeable:
                start = np.frombuffer(view, dtype=np.uint8).ctypes.data - whole.ctypes.data
                return memoryview(whole[start:start + view.nbytes])
    return memoryview(bytearray(view))


def _to_device(t: Any, device: str) -> Any:
    try:
        return t.to(device)
    except Exception as exc:  # no such device here: torch raises RuntimeError or AssertionError
        with _warned_lock:
            first = device not in _warned_devices
            _warned_devices.add(device)
        if first:
            warnings.warn(f"notebook_memo: a cached tensor was stored on {device}, which this machine cannot "
                          f"use ({type(exc).__name__}: {str(exc)[:120]}); it is loaded on the CPU instead. "
                          f"Move it with .to(...) if you need it elsewhere.", MemoWarning, stacklevel=2)
        return t


def storage_of(t: Any) -> tuple[Any, int] | None:
    """Return what identifies the memory a CPU tensor reads, with that memory's size in bytes, where a hit can give
    it back as a view of that memory stored once (see ``tensor_plan``); None for any other tensor."""
    if not is_plain_tensor(t) or t.__dict__ or t.device.type != "cpu" or t.grad_fn is not None \
            or t.is_conj() or t.is_neg() or t.is_complex() or (t.is_leaf and t.grad is not None) \
            or not t.numel():
        return None
    storage = t.untyped_storage()
    if not storage.data_ptr() or storage.nbytes() % t.element_size():
        return None
    return ("cpu", storage.data_ptr()), storage.nbytes()


def tensor_plan(tensors: list[tuple[Any, tuple[Any, int]]]) -> dict[int, tuple[Any, ...]]:
    """Return, by id, how to pickle each tensor of ``tensors`` (tensor, its ``storage_of``) stored as a view of
    its memory stored once: where several share it and span at least half of it (a small view of a large
    memory is stored alone, as today)."""
    torch = sys.modules["torch"]
    groups: dict[Any, list[Any]] = {}
    sizes: dict[Any, int] = {}
    for t, (token, nbytes) in tensors:
        groups.setdefault(token, []).append(t)
        sizes[token] = nbytes
    plan: dict[int, tuple[Any, ...]] = {}
    for token, members in groups.items():
        if len(members) < 2:
            continue
        spans, end, covered = [], 0, 0
        for t in members:
            size = t.element_size()
            low = high = t.storage_offset() * size
            for n, stride in zip(t.shape, t.stride()):
                high += (n - 1) * stride * size
            spans.append((low, high + size))
        for low, high in sorted(spans):
            if high > end:
                covered += high - max(low, end)
                end = high
        if 2 * covered < sizes[token]:
            continue
        memory = torch.empty(0, dtype=torch.uint8).set_(members[0].untyped_storage())  # the whole memory, once
        for t in members:
            plan[id(t)] = (tensor_view, (memory, str(t.dtype).removeprefix("torch."), tuple(t.shape), tuple(t.stride()),
                                         t.storage_offset() * t.element_size(), bool(t.requires_grad),
                                         type(t) is torch.nn.Parameter))
    return plan


def tensor_view(memory: Any, dtype: str, shape: tuple[int, ...], strides: tuple[int, ...], offset: int,
                requires_grad: bool, parameter: bool) -> Any:
    """Return the view of ``memory`` (a flat uint8 tensor) a stored tensor was; torch checks that it lies within."""
    import torch

    kind = getattr(torch, dtype)
    if not isinstance(kind, torch.dtype) or not isinstance(memory, torch.Tensor) or memory.dtype is not torch.uint8:
        raise pickle.UnpicklingError("a stored tensor view is not one of a tensor's memory")
    size = torch.empty(0, dtype=kind).element_size()
    if offset % size or memory.numel() % size:
        raise pickle.UnpicklingError("a stored tensor view does not lie on its elements")
    t = memory.view(kind).as_strided(shape, strides, offset // size)
    if parameter:
        return torch.nn.Parameter(t, requires_grad=requires_grad)
    return t.requires_grad_(True) if requires_grad else t
