"""Keys of values that a library family's handler reads by its instance ``__dict__`` alone: slot values of the
user's subclasses of a numpy array, a ``weakref.WeakSet``, a torch tensor or module (a subclass whose only slots
are ``()`` has no ``__dict__`` at all), and that such values still hit on equal calls, here and after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_memo.hashing import content_hash
from tests.conftest import RUNS_SETUP, Shell, run_kernel

# (imports, base class, how a value is made from ``tag``, the body's use of the value)
_SLOTTED = {
    "numpy array": ("import numpy as np", "np.ndarray", "np.arange(3.0).view(Tagged)", "float(x.sum()) * x.tag"),
    "weak set": ("import weakref", "weakref.WeakSet", "Tagged()", "len(x) + x.tag"),
    "torch tensor": ("import torch", "torch.Tensor", "torch.arange(3.0).as_subclass(Tagged)",
                     "float(x.sum()) * x.tag"),
    "torch module": ("import torch", "torch.nn.Module", "Tagged()", "x.tag"),
}


@pytest.mark.parametrize("case", sorted(_SLOTTED))
def test_a_slot_value_of_a_subclass_of_a_library_family_is_in_the_key(shell: Shell, case: str) -> None:
    imports, base, make, use = _SLOTTED[case]
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import warnings
        {imports}
        from notebook_memo import memo

        class Tagged({base}):
            __slots__ = ("tag",)

        def make(tag):
            x = {make}
            x.tag = tag
            return x

        @memo
        def use(x):
            ran('use')
            return {use}

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, second, again = use(make(2)), use(make(100)), use(make(100))
        expected = (lambda x: {use})(make(100))
    """)
    assert shell["second"] == shell["expected"] != shell["first"]
    assert shell["again"] == shell["second"] and shell["RUNS"]["use"] == 2  # an equal call still hits


def test_an_array_of_a_subclass_without_a_dict_is_keyed_and_hits(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import numpy as np
        from notebook_memo import memo

        class Plain(np.ndarray):
            __slots__ = ()

        @memo
        def total(x):
            ran('use')
            return float(x.sum())

        first = total(np.arange(3.0).view(Plain))
        again = total(np.arange(3.0).view(Plain))
        other = total(np.arange(4.0).view(Plain))
    """)
    assert (shell["first"], shell["again"], shell["other"], shell["RUNS"]["use"]) == (3.0, 3.0, 6.0, 2)


def test_slot_values_of_an_array_subclass_count_and_unset_ones_are_absent() -> None:
    import numpy as np

    class Tagged(np.ndarray):
        __slots__ = ("__dict__", "tag")

    def make(**attributes: object) -> Tagged:
        x = np.arange(3.0).view(Tagged)
        for name, value in attributes.items():
            setattr(x, name, value)
        return x

    assert content_hash(make(tag=1)) == content_hash(make(tag=1))
    assert content_hash(make(tag=1)) != content_hash(make(tag=2))
    assert content_hash(make(tag=1)) != content_hash(make())
    assert content_hash(make(tag=None)) != content_hash(make())
    assert content_hash(make(unit="m")) != content_hash(make(unit="s"))  # its dict, as before


def test_slotted_subclasses_of_library_families_hit_after_a_restart(cache_dir: Path) -> None:
    cells = [RUNS_SETUP, """
        import weakref
        import numpy as np
        import torch
        from notebook_memo import memo

        class Arr(np.ndarray):
            __slots__ = ("tag",)

        class Bare(np.ndarray):
            __slots__ = ()

        class Ten(torch.Tensor):
            __slots__ = ("tag",)

        class Mod(torch.nn.Module):
            __slots__ = ("tag",)

        class Weak(weakref.WeakSet):
            __slots__ = ("tag",)

        def tagged(x, tag):
            x.tag = tag
            return x

        @memo
        def use(x):
            ran('use')
            return repr(x.tag) if hasattr(x, "tag") else "bare"

        OUT["results"] = [use(tagged(np.arange(3.0).view(Arr), {"unit": "m"})), use(np.arange(3.0).view(Bare)),
                          use(tagged(torch.arange(3.0).as_subclass(Ten), (1, 2))), use(tagged(Mod(), "mod")),
                          use(tagged(Weak(), 7))]
        OUT["runs"] = RUNS.get("use", 0)
    """]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["results"] == second["results"] == ["{'unit': 'm'}", "bare", "(1, 2)", "'mod'", "7"]
    assert (first["runs"], second["runs"]) == (5, 0)
