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
    shell.run("second = titled('a')")  # as the run left REG
    shell.run("del REG.__dict__['title']")  # as in a restarted kernel
    shell.run("third = titled('a')")
    assert shell["first"] == shell["second"] == shell["third"] == "registry: a"
    assert (shell["titled"].hits, shell["titled"].misses) == (2, 1)


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


# -- an argument's cached_property read by the body -------------------------------------------------------

SURVEY = """
import functools, sys
from notebook_memo import memo
class Survey:
    def __init__(self, answers):
        self.answers = answers
    @functools.cached_property
    def mean(self):
        return sum(self.answers) / len(self.answers)
@memo
def report(s):
    return f"mean {s.mean:.2f}"
"""


def test_an_argument_whose_cached_property_the_body_reads_is_stored_and_hit_after_restarts(cache_dir: Path) -> None:
    fresh = [SURVEY, """
s = Survey([1, 2, 3, 4])
OUT["results"] = [report(s), report(s)]  # the second call finds the property filled by the first
OUT["runs"] = report.misses
"""]
    peeked = [SURVEY, """
s = Survey([1, 2, 3, 4])
s.mean  # the notebook shows it first
OUT["results"] = [report(s)]
OUT["runs"] = report.misses
"""]
    first, second, third = (run_kernel(fresh, cache_dir, seed=1), run_kernel(fresh, cache_dir, seed=2),
                            run_kernel(peeked, cache_dir, seed=3))
    assert first["results"] == second["results"] == ["mean 2.50"] * 2 and third["results"] == ["mean 2.50"]
    assert (first["runs"], second["runs"], third["runs"]) == (1, 0, 0)
    assert not [w for run in (first, second, third) for w in run["_warnings"] if "MemoWarning" in w]


def test_an_argument_with_a_stale_cached_property_is_not_served_the_fresh_object_s_result(shell: Shell) -> None:
    shell.run(SURVEY + """
fresh = report(Survey([1, 2, 3, 4]))
s = Survey([1, 1, 1, 1])
s.mean
s.answers = [1, 2, 3, 4]  # its mean stays 1.0: what the body reads
stale = report(s)
""")
    assert (shell["fresh"], shell["stale"]) == ("mean 2.50", "mean 1.00")  # as the functions compute them


def test_a_body_that_fills_an_argument_s_cached_property_and_changes_it_is_not_stored(shell: Shell) -> None:
    shell.run(SURVEY.replace('return f"mean {s.mean:.2f}"', 's.answers.append(s.mean)\n    return len(s.answers)'))
    said = _memo_warnings(shell, "s = Survey([1, 2])\nreport(s)")
    assert any("changed its argument 's' in place" in w for w in said), said
    assert shell["report"].entries() == []


def test_an_async_body_that_reads_an_argument_s_cached_property_is_hit_on_the_next_call(shell: Shell) -> None:
    shell.run(SURVEY.replace("def report(s)", "async def report(s)"))
    assert _memo_warnings(shell, "import asyncio\ns = Survey([1, 2])\nfirst = asyncio.run(report(s))") == []
    shell.run("second = asyncio.run(report(s))")
    assert (shell["first"], shell["second"], shell["report"].misses) == ("mean 1.50", "mean 1.50", 1)


def test_an_argument_with_an_lru_cached_method_read_by_the_body_is_hit_after_a_restart(cache_dir: Path) -> None:
    cells = ["""
import functools
from notebook_memo import memo
class Survey:
    def __init__(self, answers):
        self.answers = answers
    @functools.lru_cache(maxsize=None)
    def total(self):
        return sum(self.answers)
@memo
def report(s):
    return s.total()
s = Survey([1, 2, 3])
OUT["results"] = [report(s), report(s)]
OUT["hits"] = report.hits
"""]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert first["results"] == second["results"] == [6, 6]
    assert (first["hits"], second["hits"]) == (1, 2)


def test_a_run_that_also_changes_an_unwatched_global_is_not_stored_as_the_next_call_s_result(shell: Shell) -> None:
    shell.run(SURVEY + """
class Tally:  # a plain object: not watched, keyed by its content
    def __init__(self):
        self.n = 0
TALLY = Tally()
@memo
def counted(s):
    TALLY.n += 1
    return (s.mean, TALLY.n)
s = Survey([1, 2, 3, 4])
results = [counted(s), counted(s)]
""")
    assert shell["results"] == [(2.5, 1), (2.5, 2)]  # the second call's state is not only the first's fill


def test_a_cell_that_reads_an_input_s_cached_property_is_hit_after_a_restart(cache_dir: Path) -> None:
    define = """
%load_ext notebook_memo
import functools
from notebook_memo import _cells
class Survey:
    def __init__(self, answers):
        self.answers = answers
    @functools.cached_property
    def mean(self):
        return sum(self.answers) / len(self.answers)
s = Survey([1, 2, 3, 4])
"""
    cell = "%%memo\nm = f'mean {s.mean:.2f}'"
    report = "OUT['m'] = m\nOUT['answers'] = s.answers\nOUT['hits'] = sum(c.hits for c in _cells._cells.values())"
    first, second = (run_kernel([define, cell, report], cache_dir, seed=seed) for seed in (1, 2))
    assert (first["m"], first["hits"]) == ("mean 2.50", 0)
    assert (second["m"], second["answers"], second["hits"]) == ("mean 2.50", [1, 2, 3, 4], 1)
    assert not [w for run in (first, second) for w in run["_warnings"] if "not cached" in w]
