"""Sharing between values: a %%memo cell keyed by which of its inputs are one object or share memory (a copy
and a view of the same content are two calls), and explain saying so in words; a @memo result that is one of
its arguments stays that argument after a hit; numpy arrays of one stored value over one memory (a base and its
views, two overlapping slices) come back as views of one restored memory, with the same key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from notebook_memo import memo
from tests.conftest import Shell, run_kernel


def test_a_cell_whose_input_is_now_a_view_of_another_runs_again(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\nimport numpy as np")
    cell = "%%memo scale\nX_all *= 2\ns = float(X_head.sum())"
    shell.run("X_all = np.arange(12.).reshape(4, 3)\nX_head = X_all[:2].copy()")
    shell.run(cell)
    assert shell["s"] == 15.0
    shell.run("X_all = np.arange(12.).reshape(4, 3)\nX_head = X_all[:2]")  # the same contents, one memory now
    shell.run(cell)
    assert shell["s"] == 30.0
    assert list(shell["X_head"][0]) == [0.0, 2.0, 4.0]
    explained = str(shell.run("%memo explain scale"))
    assert "which inputs share objects or memory changed" in explained, explained


def test_a_cell_whose_two_inputs_are_now_one_list_runs_again(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    cell = "%%memo grow\na.append(3)\nn = len(b)"
    shell.run("a = [1, 2]\nb = list(a)")
    shell.run(cell)
    assert shell["n"] == 2
    shell.run("a = [1, 2]\nb = a")
    shell.run(cell)
    assert shell["n"] == 3
    assert shell["b"] is shell["a"]
    shell.run("a = [1, 2]\nb = a")
    shell.run(cell)  # a hit of the shared run: the two names stay one list
    assert shell["n"] == 3
    assert shell["b"] is shell["a"]


def test_a_cell_over_a_view_of_another_input_hits_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo\nimport numpy as np",
             "X_all = np.arange(12.).reshape(4, 3)\nX_head = X_all[:2]\nd = {'k': 1}\ne = d",
             "%%memo scale\nX_all *= 2\nd['k'] += 1\ns = float(X_head.sum())",
             "from notebook_memo import _cells\nOUT['hits'] = sum(c.hits for c in _cells._cells.values())\n"
             "OUT['s'] = s\nOUT['head'] = X_head[0].tolist()\nOUT['shares'] = bool(np.shares_memory(X_all, X_head))\n"
             "OUT['e'] = e['k']\nOUT['one'] = e is d"]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)  # another hash seed: the same key
    assert (first["hits"], second["hits"]) == (0, 1)
    for out in (first, second):
        assert (out["s"], out["head"], out["shares"], out["e"], out["one"]) == (30.0, [0.0, 2.0, 4.0], True, 2, True)


def test_explain_says_in_words_that_which_arguments_share_an_object_changed() -> None:
    @memo
    def grow(a: list[int], b: list[int]) -> int:
        return len(a + b)

    assert grow([1, 2], [1, 2]) == 4
    a = [1, 2]
    explained = grow.explain(a, a)
    assert not explained.hit
    assert explained.reasons == ["which arguments share objects or memory changed"], explained


# -- a result that is one of the call's arguments -----------------------------------------------


def test_a_result_that_is_its_argument_is_that_argument_after_a_hit() -> None:
    import numpy as np

    @memo
    def as_float(A: np.ndarray) -> np.ndarray:
        return np.asarray(A, dtype=np.float64)  # no conversion needed: A itself

    @memo
    def with_size(A: np.ndarray) -> dict[str, object]:
        return {"X": A, "n": len(A), "copy": A.copy()}

    X = np.linspace(0, 1, 24).reshape(8, 3)
    assert as_float(X) is X
    assert as_float(X) is X  # a hit
    assert as_float.hits == 1
    Y = X.copy()
    assert as_float(Y) is Y  # equal contents, the same key: the object of this call
    for _ in range(2):
        out = with_size(X)
        assert out["X"] is X
        assert out["copy"] is not X and not np.shares_memory(out["copy"], X)  # an equal copy stays a copy
    assert with_size.hits == 1


def test_a_result_that_is_its_argument_keeps_its_consumer_s_key_after_a_restart(cache_dir: Path) -> None:
    cells = ["from notebook_memo import memo\nimport numpy as np, torch\n"
             "X = np.linspace(0, 1, 24).reshape(8, 3)\nT = torch.linspace(0, 1, 24).reshape(8, 3)\n"
             "@memo\ndef as_float(A):\n    return np.asarray(A, dtype=np.float64)\n"
             "@memo\ndef to_t(A):\n    return A.to(torch.float32)\n"
             "@memo\ndef fit(full, part):\n    return float(full.sum() + part.sum())\n"
             "Xc = as_float(X)\nTc = to_t(T)\n"
             "OUT['same'] = [Xc is X, Tc is T]\nOUT['fit'] = [fit(X, Xc), fit(T, Tc)]\n"
             "OUT['hits'] = [as_float.hits, to_t.hits, fit.hits]"]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["same"] == second["same"] == [True, True]
    assert first["hits"] == [0, 0, 0]
    assert second["hits"] == [1, 1, 2]  # the consumer, keyed by Xc being X, hits at once
    assert first["fit"] == second["fit"]


# -- arrays of one stored value over one memory -------------------------------------------------


def _owner(array: Any) -> Any:
    """Return the array owning the memory ``array`` reads (a loaded one's is the buffer it was read into)."""
    import numpy as np

    while isinstance(array.base, np.ndarray):
        array = array.base
    return array if array.base is None else array.base


def test_views_in_one_result_come_back_as_views_of_one_memory_with_the_same_key() -> None:
    import numpy as np

    from notebook_memo.hashing import content_hash

    @memo
    def split(kind: str) -> object:
        X = np.arange(60.).reshape(20, 3)
        if kind == "overlap":
            return X[:12], X[8:]
        if kind == "disjoint":
            return X[:5], X[5:]
        if kind == "dict":
            return {"X": X, "head": X[:5], "cols": X[:, ::2]}
        return X, X.T

    made = {kind: split(kind) for kind in ("overlap", "disjoint", "dict", "T")}
    for kind, original in made.items():
        restored = split(kind)  # a hit
        assert content_hash(restored) == content_hash(original), kind
        parts = list(restored.values()) if isinstance(restored, dict) else list(restored)
        assert len({id(_owner(p)) for p in parts}) == 1, kind  # one memory, as in the run
        assert all(p.flags.writeable for p in parts), kind
    assert split.hits == 4
    first, second = split("overlap")
    first[8] = -1.0  # the rows both read
    assert list(second[0]) == [-1.0, -1.0, -1.0]
    d = split("dict")
    d["X"][:] = 0.0
    assert not d["head"].any() and not d["cols"].any()


def test_a_small_view_of_a_large_memory_is_stored_alone() -> None:
    import numpy as np

    from notebook_memo._serialize import dumps, loads

    X = np.zeros(1_000_000)
    payload = dumps((X[:10], X[20:30]))  # 160 bytes of an 8 MB memory: not the memory
    assert payload.nbytes < 10_000
    a, b = loads(payload.pickle, [bytearray(x) for x in payload.buffers])
    assert not np.shares_memory(a, b)
    whole = dumps((X, X[:10]))  # the memory is in the value anyway: stored once
    assert 8_000_000 <= whole.nbytes < 8_010_000
    big, head = loads(whole.pickle, [bytearray(x) for x in whole.buffers])
    assert np.shares_memory(big, head)


def test_a_cell_s_view_of_its_other_output_is_one_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo\nimport numpy as np",
             "%%memo views\nX_all = np.arange(12.).reshape(4, 3)\nX_head = X_all[:2]",
             "X_all -= X_all.mean(axis=0)\n"
             "from notebook_memo import _cells\nOUT['hits'] = sum(c.hits for c in _cells._cells.values())\n"
             "OUT['shares'] = bool(np.shares_memory(X_all, X_head))\nOUT['head'] = X_head.tolist()",
             "@memo\ndef use(a, b):\n    return float(a.sum() + b.sum())\nuse(X_all, X_head)\nOUT['use'] = use.hits"]
    cells[3] = "from notebook_memo import memo\n" + cells[3]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert (first["hits"], second["hits"]) == (0, 1)
    assert first["shares"] and second["shares"]
    assert first["head"] == second["head"] == [[-4.5, -4.5, -4.5], [-1.5, -1.5, -1.5]]
    assert (first["use"], second["use"]) == (0, 1)  # the consumer of both hits at once


def test_a_stored_view_that_reaches_past_its_memory_is_refused_as_damage() -> None:
    import pickle

    import numpy as np
    import pytest

    from notebook_memo._array_views import array_view
    from notebook_memo._serialize import loads

    class Planted:  # what a hostile writer could put in a payload: a view past the end of its memory
        def __reduce__(self) -> tuple[Any, ...]:
            return array_view, (np.zeros(4), 800, (4,), (8,), np.dtype(float), True)

    with pytest.raises(ValueError):
        loads(pickle.dumps(Planted(), protocol=5))

    import torch

    from notebook_memo._torch_values import tensor_view

    class PlantedTensor:
        def __reduce__(self) -> tuple[Any, ...]:
            return tensor_view, (torch.zeros(16, dtype=torch.uint8), "float32", (4,), (1,), 8, False, False)

    with pytest.raises(RuntimeError):
        loads(pickle.dumps(PlantedTensor(), protocol=5))


def test_a_view_of_an_argument_is_a_view_of_the_call_s_argument_after_a_hit() -> None:
    import numpy as np

    @memo
    def head(A: np.ndarray, n: int) -> np.ndarray:
        return A[:n]

    A = np.arange(24.) * 1.5  # an array that owns its memory
    assert np.shares_memory(head(A, 4), A)
    B = A.copy()
    served = head(B, 4)  # a hit: a view of this call's argument, as a run gives
    assert head.hits == 1 and np.shares_memory(served, B) and list(served) == [0.0, 1.5, 3.0, 4.5]
    M = np.arange(24.).reshape(8, 3) * 1.0
    first = head(M, 2)
    F = np.asfortranarray(M)  # equal, laid out otherwise (the layout is not in the key)
    again = head(F, 2)
    assert head.hits == 2
    assert again.tolist() == first.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_tensors_over_one_memory_come_back_over_one_memory_with_the_same_key() -> None:
    import torch

    from notebook_memo._serialize import dumps
    from notebook_memo.hashing import content_hash

    @memo
    def pieces(kind: str) -> object:
        t = torch.arange(12.)
        if kind == "overlap":
            return t[:8], t[4:]
        if kind == "disjoint":
            return t[:6], t[6:].view(2, 3)
        w = torch.nn.Parameter(torch.ones(4, 3))
        return w, w.detach()[1:]

    made = {kind: pieces(kind) for kind in ("overlap", "disjoint", "tied")}
    for kind, original in made.items():
        restored = pieces(kind)  # a hit
        assert content_hash(restored) == content_hash(original), kind
        assert restored[0].untyped_storage().data_ptr() == restored[1].untyped_storage().data_ptr(), kind
        assert [type(p) for p in restored] == [type(p) for p in original], kind
        assert [p.requires_grad for p in restored] == [p.requires_grad for p in original], kind
    assert pieces.hits == 3
    first, second = pieces("overlap")
    first[5] = -1.0
    assert second[1].item() == -1.0
    big = torch.zeros(1_000_000)
    assert dumps((big[:10], big[20:30])).nbytes < 10_000  # not the 4 MB memory of two small views


def test_a_view_of_a_reshaped_argument_keeps_its_consumer_s_key_after_a_restart(cache_dir: Path) -> None:
    cells = ["from notebook_memo import memo\nimport numpy as np\n"
             "X = np.linspace(0, 1, 24).reshape(8, 3)  # a view of the array linspace made\n"
             "@memo\ndef head(A, n):\n    return A[:n]\n"
             "@memo\ndef fit(full, part):\n    return float(full.sum() + part.sum())\n"
             "Xh = head(X, 4)\nOUT['shares'] = bool(np.shares_memory(X, Xh))\nOUT['fit'] = fit(X, Xh)\n"
             "OUT['hits'] = [head.hits, fit.hits]"]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["shares"] and second["shares"]
    assert (first["hits"], second["hits"]) == ([0, 0], [1, 1])
    assert first["fit"] == second["fit"]
