"""Random seeds, round five: ``np.random.RandomState(seed)`` counts as seeded only where its seed cannot be None: a
value read where it lies (a name, attribute, item, ``dict.get``) that is not None, an arithmetic operation, a literal
list or tuple, or a call of a builtin that returns no None (``int``, ``len``, ``abs``, ...). A seed that a helper, a
``getattr`` with a default, a ``pop`` or another mapping's ``get`` computed may be None: it warns, as
``RandomState(None)`` does."""

from __future__ import annotations

import warnings

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell

PRELUDE = """
import collections, types
import numpy as np
from notebook_memo import memo

def pick_seed(cfg):
    return cfg.get("seed")

def settings():
    return {"seed": None}

def make_cfg():
    return types.SimpleNamespace(seed=None)

SEEDS = [None, None]
ARRAY_SEEDS = np.array([3, 4])
"""

MAYBE_NONE = {
    "getattr_default": ('np.random.RandomState(getattr(cfg, "seed", None))', "types.SimpleNamespace(lr=0.1)"),
    "pop": ('np.random.RandomState(cfg.pop("seed", None))', '{"lr": 0.1}'),
    "ordered_get": ('np.random.RandomState(cfg.get("seed"))', "collections.OrderedDict(lr=0.1)"),
    "helper": ("np.random.RandomState(pick_seed(cfg))", '{"lr": 0.1}'),
    "helper_item": ('np.random.RandomState(settings()["seed"])', "0"),
    "helper_attribute": ("np.random.RandomState(make_cfg().seed)", "0"),
    "nested_item": ('np.random.RandomState(cfg["train"]["seed"])', '{"train": {"seed": None}}'),
    "computed_index": ("np.random.RandomState(SEEDS[cfg + 1])", "0"),
    "keyword_helper": ("np.random.RandomState(seed=pick_seed(cfg))", '{"lr": 0.1}'),
}


@pytest.mark.parametrize("form", sorted(MAYBE_NONE))
def test_a_legacy_generator_given_a_seed_that_may_be_none_warns(form: str, shell: Shell) -> None:
    call, argument = MAYBE_NONE[form]
    shell.run(PRELUDE + f"""
@memo
def sample(cfg):
    return float({call}.rand())
""")
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run(f"sample({argument})")


SEEDED = {
    "nested_item": ('np.random.RandomState(cfg["train"]["seed"])', '{"train": {"seed": 3}}'),
    "getattr_present": ('np.random.RandomState(getattr(cfg, "seed", None))', "types.SimpleNamespace(seed=3)"),
    "ordered_get_present": ('np.random.RandomState(cfg.get("seed"))', "collections.OrderedDict(seed=3)"),
    "numpy_integer": ('np.random.RandomState(np.int64(cfg["seed"]))', '{"seed": 3}'),
    "computed_index": ("np.random.RandomState(ARRAY_SEEDS[cfg - 1])", "1"),
    "length": ("np.random.RandomState(len(cfg))", "[1, 2]"),
    "literal_list": ("np.random.RandomState([cfg, 1])", "3"),
}


@pytest.mark.parametrize("form", sorted(SEEDED))
def test_a_legacy_generator_given_a_seed_that_cannot_be_none_gives_no_warning(form: str, shell: Shell) -> None:
    call, argument = SEEDED[form]
    shell.run(PRELUDE + f"""
@memo
def sample(cfg):
    return float({call}.rand())
""")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = shell.run(f"sample({argument})")
        assert shell.run(f"sample({argument})") == first
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


def test_a_cell_seeding_by_a_helper_that_gives_none_warns(shell: Shell) -> None:
    shell.run("""
    import numpy as np
    get_ipython().run_line_magic('load_ext', 'notebook_memo')
    def pick_seed():
        return None
    """)
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run("%%memo sim\nsample = float(np.random.RandomState(pick_seed()).normal())\n")


def test_a_computed_key_of_a_mapping_whose_missing_keys_give_none_warns(shell: Shell) -> None:
    """Every item held is a seed, but a missing key gives None: it may be None."""
    shell.run(PRELUDE + """
class Seeds(dict):
    def __missing__(self, key):
        return None

SEED_OF = Seeds({0: 3})

@memo
def sample(fold):
    return float(np.random.RandomState(SEED_OF[fold + 1]).rand())
""")
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run("sample(0)")
