"""A ``functools.cached_property`` fills its value into the instance's ``__dict__`` on first read. That fill
changes no meaning (the value derives from the rest), so a body or cell that only fills one is still cached;
any other change in place of the same object, a watched global or module data, still keeps its result out
of the cache, as for a class without one. Covered for @memo bodies and %%memo cells, in one process and
across restarts with another hash seed."""

from __future__ import annotations

import functools
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import MemoWarning
from notebook_memo.hashing import content_hash, filled_cached_properties
from tests.conftest import Shell, run_kernel

REGISTRY = """
import functools
from notebook_memo import memo
class Registry(dict):
    @functools.cached_property
    def title(self):  # derived from nothing the body changes
        return "registry"
REG = Registry()
"""


def _memo_warnings(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


# -- a watched global changed in place --------------------------------------------------------------------

def test_a_global_dict_with_a_cached_property_changed_by_the_body_is_not_stored_across_a_restart(
        cache_dir: Path) -> None:
    cells = [REGISTRY, """
@memo
def register(name):
    REG[name] = len(REG) + 1
    return REG[name]
OUT["returned"] = register("a")
OUT["reg"] = dict(REG)
OUT["hits"] = register.hits
"""]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    for run in (first, second):
        assert (run["returned"], run["reg"], run["hits"]) == (1, {"a": 1}, 0)
        assert any("changed the global 'REG' in place" in w for w in run["_warnings"]), run["_warnings"]


def test_a_global_model_with_a_cached_property_stepped_by_the_body_is_not_stored(shell: Shell) -> None:
    shell.run("""
import functools
import torch
from notebook_memo import memo
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        with torch.no_grad():
            self.lin.weight.fill_(1.0)
            self.lin.bias.fill_(0.0)
    def forward(self, x):
        return self.lin(x)
    @functools.cached_property
    def n_params(self):  # never read here
        return sum(p.numel() for p in self.parameters())
MODEL = Net()
OPT = torch.optim.SGD(MODEL.parameters(), lr=0.1)
@memo
def train_step(seed):
    loss = MODEL(torch.ones(4, 2)).pow(2).mean()
    OPT.zero_grad()
    loss.backward()
    OPT.step()
    return loss.item()
""")
    said = _memo_warnings(shell, "train_step(0)")
    assert any("changed the global 'MODEL' in place" in w for w in said), said
    shell.run("train_step(0)")
    assert shell["train_step"].hits == 0 and shell["train_step"].entries() == []
    assert shell["MODEL"].lin.weight.detach().flatten().tolist() == pytest.approx([0.44, 0.44])  # stepped twice


def test_a_body_that_only_fills_a_global_s_cached_property_is_stored_and_hit(shell: Shell) -> None:
    shell.run(REGISTRY + """
@memo
def titled(name):
    return f"{REG.title}: {name}"
""")
    assert _memo_warnings(shell, "first = titled('a')") == []
    assert "title" in vars(shell["REG"])  # the body filled it
    assert len(shell["titled"].entries()) == 1
    shell.run("del REG.__dict__['title']")  # as in a restarted kernel
    shell.run("second = titled('a')")
    assert shell["first"] == shell["second"] == "registry: a" and shell["titled"].hits == 1


def test_a_body_that_fills_a_cached_property_and_changes_the_same_global_is_not_stored(shell: Shell) -> None:
    shell.run(REGISTRY + """
@memo
def register(name):
    REG[name] = REG.title
    return len(REG)
""")
    said = _memo_warnings(shell, "register('a')")
    assert any("changed the global 'REG' in place" in w for w in said), said
    assert shell["register"].entries() == []


def test_a_body_that_fills_a_cached_property_and_sets_another_attribute_of_the_global_is_not_stored(
        shell: Shell) -> None:
    shell.run(REGISTRY + """
@memo
def label(name):
    REG.last = name  # an attribute of the object itself, beside the cached_property it fills
    return f"{REG.title}: {name}"
""")
    said = _memo_warnings(shell, "label('a')")
    assert any("changed the global 'REG' in place" in w for w in said), said
    assert shell["label"].entries() == []


def test_a_body_that_reads_a_memo_cached_property_of_a_global_is_stored(shell: Shell) -> None:
    shell.run("""
from notebook_memo import memo
class Registry(dict):
    @memo.cached_property
    def title(self):
        return "registry"
REG = Registry()
@memo
def titled(name):
    return f"{REG.title}: {name}"
""")
    assert _memo_warnings(shell, "titled('a')") == []
    shell.run("titled('a')")
    assert shell["titled"].hits == 1


# -- module data a %%memo cell changes through a helper -------------------------------------------------

@pytest.fixture
def registry_module(tmp_path: Path) -> Iterator[None]:
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "cp_registry.py").write_text(textwrap.dedent('''
        import functools
        class Registry(dict):
            @functools.cached_property
            def title(self):
                return "registry"
        REGISTRY = Registry()
        def add(name):
            REGISTRY[name] = len(REGISTRY) + 1
            return REGISTRY[name]
    '''))
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop("cp_registry", None)


def test_a_cell_that_changes_module_data_with_a_cached_property_is_not_stored(
        shell: Shell, registry_module: None) -> None:
    shell.run("%load_ext notebook_memo\nimport cp_registry")
    shell.run("%%memo\nx = cp_registry.add('a')")
    shell.run("cp_registry.REGISTRY.clear()")  # as in a restarted kernel
    shell.run("%%memo\nx = cp_registry.add('a')")
    assert shell["cp_registry"].REGISTRY == {"a": 1}  # the cell ran again: its first run was not stored


# -- the digest without the values filled during a run ----------------------------------------------------

def _objects_with_a_cached_property() -> list[Any]:
    import numpy as np
    import torch

    class Plain:
        def __init__(self) -> None:
            self.n = 3

        @functools.cached_property
        def square(self) -> int:
            return self.n ** 2

    class Slotted:
        __slots__ = ("__dict__", "n")

        def __init__(self) -> None:
            self.n = 3

        @functools.cached_property
        def square(self) -> int:
            return self.n ** 2

    class Empty(dict):  # type: ignore[type-arg]
        @functools.cached_property
        def square(self) -> int:
            return 9

    class Net(torch.nn.Linear):
        @functools.cached_property
        def square(self) -> int:
            return 9

    class Units(np.ndarray):  # type: ignore[type-arg]
        @functools.cached_property
        def square(self) -> int:
            return 9

    torch.manual_seed(0)
    return [Plain(), Slotted(), Empty(), Net(2, 1), np.arange(3.0).view(Units)]


@pytest.mark.parametrize("index", range(5), ids=["object", "slots", "dict subclass", "torch module", "array"])
def test_a_digest_leaving_out_the_values_filled_since_is_the_digest_before(index: int) -> None:
    value = _objects_with_a_cached_property()[index]
    before = content_hash(value)
    assert value.square == 9 and filled_cached_properties(value) == {"square"}
    assert content_hash(value) != before  # the fill is in the object's state
    assert content_hash(value, leave_out=frozenset({"square"})) == before
    vars(value)["other"] = 1  # any other change still shows
    assert content_hash(value, leave_out=frozenset({"square"})) != before


def test_an_argument_whose_memo_cached_property_the_body_reads_is_stored_and_hit_after_a_restart(
        cache_dir: Path) -> None:
    cells = ["""
from notebook_memo import memo
class Survey:
    @memo.cached_property
    def label(self):
        return "survey"
@memo
def report(s):
    return s.label
OUT["first"] = report(Survey())
OUT["hits"] = report.hits
"""]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert (first["first"], first["hits"], second["hits"]) == ("survey", 0, 1)
    assert not [w for w in first["_warnings"] + second["_warnings"] if "MemoWarning" in w]
