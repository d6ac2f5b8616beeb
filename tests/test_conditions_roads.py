"""Preconditions: roads to a stale result that the first tests did not walk.

Each test is a false hit found by review: a cached answer served after something it depends on
changed. Restarts are real processes (other PYTHONHASHSEED); files and databases are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_kernel

# numpy is not loaded in a fresh kernel: the body is the first to import it.
_SAMPLE = """
from notebook_memo import memo

@memo
def sample():
    import numpy as np
    return float(np.random.random())
"""


def test_a_generator_first_loaded_by_the_body_is_keyed_in_the_same_kernel(cache_dir: Path) -> None:
    out = run_kernel([_SAMPLE, """
    import sys
    OUT["loaded_before"] = "numpy" in sys.modules
    first = sample()
    import numpy as np
    np.random.seed(1)
    OUT["seeded"] = sample()
    OUT["expected"] = float(np.random.RandomState(1).random_sample())
    OUT["after"] = float(np.random.random())
    OUT["expected_after"] = float(np.random.RandomState(1).random_sample(2)[1])
    """], cache_dir)
    assert out["loaded_before"] is False
    assert out["seeded"] == out["expected"]
    assert out["after"] == out["expected_after"]  # the user's seed is not overwritten by a stale state


def test_a_generator_first_loaded_by_the_body_is_keyed_after_a_restart(cache_dir: Path) -> None:
    first = run_kernel([_SAMPLE, "OUT['first'] = sample()"], cache_dir, seed=1)
    out = run_kernel([_SAMPLE, """
    import numpy as np
    np.random.seed(1)
    OUT["seeded"] = sample()
    OUT["expected"] = float(np.random.RandomState(1).random_sample())
    """], cache_dir, seed=2)
    assert out["seeded"] == out["expected"]
    again = run_kernel([_SAMPLE, "OUT['first'] = sample()"], cache_dir, seed=3)
    assert again["first"] == first["first"]  # a kernel that has not loaded numpy is served the first run


def test_torch_first_loaded_by_the_body_is_keyed(cache_dir: Path) -> None:
    pytest.importorskip("torch")
    out = run_kernel(["""
    import sys
    from notebook_memo import memo

    @memo
    def sample():
        import torch
        return float(torch.rand(1))
    """, """
    OUT["loaded_before"] = "torch" in sys.modules
    sample()
    import torch
    torch.manual_seed(1)
    OUT["seeded"] = sample()
    OUT["expected"] = float(torch.rand(1, generator=torch.Generator().manual_seed(1)))
    """], cache_dir)
    assert out["loaded_before"] is False
    assert out["seeded"] == out["expected"]
