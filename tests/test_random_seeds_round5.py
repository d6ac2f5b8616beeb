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


# -- a seed read from an attribute the instance's __dict__ does not hold -------------------------------------------

CONFIGS = """
import dataclasses, typing
import numpy as np
from notebook_memo import memo

class Defaults:
    seed = 42

class NoDefault:
    seed = None

@dataclasses.dataclass(slots=True)
class Slots:
    seed: int = 42

class Given:
    def __get__(self, obj, owner=None):
        return 42

class Described:
    seed = Given()

class Fields(typing.NamedTuple):
    seed: int = 42

class Computed:
    @property
    def seed(self):
        return None

CONFIG = {
    "class_default": Defaults(), "class_none": NoDefault(), "slots": Slots(), "descriptor": Described(),
    "namedtuple": Fields(), "namedtuple_none": Fields(None), "property": Computed(),
}
"""

ATTRIBUTE_SEEDED = ["class_default", "slots", "namedtuple"]
# None, or what code gives (a property's, another descriptor's), which a read must not run
ATTRIBUTE_MAYBE_NONE = ["class_none", "descriptor", "namedtuple_none", "property"]
SURFACES = {
    "memo": ("@memo\ndef {name}(x):\n    return float(np.random.RandomState({seed}).rand()) + x\n", "{name}(1)"),
    "batch": ('@memo.batch("xs", batch_size=4)\ndef {name}(xs):\n    rs = np.random.RandomState({seed})\n'
              "    return [float(rs.rand()) + x for x in xs]\n", "{name}([1, 2])"),
    "cell": ("", "%%memo {name}\n{name} = float(np.random.RandomState({seed}).rand())\n"),
}


def _entropy_warnings(shell: Shell, form: str, surface: str, seed: str) -> list[str]:
    name = f"draw_{surface}_{form}_{seed.startswith('getattr')}"  # warned once per qualified name
    define, call = SURFACES[surface]
    shell.run("get_ipython().run_line_magic('load_ext', 'notebook_memo')")
    shell.run(CONFIGS + f"cfg = CONFIG[{form!r}]\n" + define.format(name=name, seed=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(call.format(name=name, seed=seed))
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning) and "entropy" in str(w.message)]


@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize("form", ATTRIBUTE_SEEDED)
def test_a_seed_read_from_a_class_default_a_slot_or_a_named_tuple_field_gives_no_warning(
        shell: Shell, form: str, surface: str) -> None:
    assert _entropy_warnings(shell, form, surface, "cfg.seed") == []


@pytest.mark.parametrize("form", ATTRIBUTE_SEEDED)
def test_getattr_of_a_class_default_a_slot_or_a_named_tuple_field_gives_no_warning(shell: Shell, form: str) -> None:
    assert _entropy_warnings(shell, form, "memo", 'getattr(cfg, "seed", None)') == []


@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize("form", ATTRIBUTE_MAYBE_NONE)
def test_a_seed_read_from_a_class_attribute_that_is_none_or_cannot_be_read_still_warns(
        shell: Shell, form: str, surface: str) -> None:
    assert _entropy_warnings(shell, form, surface, "cfg.seed") != []
