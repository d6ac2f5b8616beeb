"""Generators seeded after they are built, and explaining a call right after its first run (round 7).

A generator built without a seed (``np.random.RandomState()``, ``random.Random()``) takes the operating system's
entropy, but one seeded by a constant or a readable seed on the very next use, before any draw, gives a result
that is not random: no warning. Seeding it only in a branch, after a draw, on another object, with None or where an
exception handler may draw from it instead, still warns. The same for a torch generator seeded from entropy
(``g.seed()``) and given ``manual_seed`` by the next statement.

Right after a call that found nothing of its function stored, ``explain_last`` (and ``%memo explain``) says it
was the first run and that its result is stored now, never that nothing is cached; after the entry is cleared, that
it is not stored.
"""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest
import torch

from notebook_memo import MemoWarning
from tests.conftest import Shell

# -- a generator built without a seed, then seeded before its first draw ------------------------------------------

SEEDED_AFTER_BUILDING = {
    "numpy_constant": ("rs = np.random.RandomState()\nrs.seed(42)", "float(rs.rand())"),
    "numpy_keyword": ("rs = np.random.RandomState()\nrs.seed(seed=42)", "float(rs.rand())"),
    "numpy_subscript": ('rs = np.random.RandomState()\nrs.seed(cfg["seed"])', "float(rs.rand())"),
    "numpy_cast": ("rs = np.random.RandomState()\nrs.seed(int(seed))", "float(rs.rand())"),
    "numpy_imported": ("rs = RandomState()\nrs.seed(seed * 2 - 42)", "float(rs.rand())"),
    "random_constant": ("g = random.Random()\ng.seed(7)", "g.random()"),
    "random_keyword": ("g = random.Random()\ng.seed(a=7)", "g.random()"),
    "random_sum": ("g = random.Random()\ng.seed(seed - 35)", "g.random()"),
    "one_line": ("g = random.Random(); g.seed(7)", "g.random()"),
}
EXPECTED = {"numpy": float(np.random.RandomState(42).rand())}


def _expected(form: str) -> float:
    import random

    return EXPECTED["numpy"] if form.startswith("numpy") else random.Random(7).random()


@pytest.mark.parametrize("form", sorted(SEEDED_AFTER_BUILDING))
def test_a_generator_seeded_right_after_it_is_built_gives_no_warning(form: str, shell: Shell) -> None:
    build, draw = SEEDED_AFTER_BUILDING[form]
    body = textwrap.indent(f"{build}\nreturn {draw}", " " * 8)
    shell.run(f"""
    import random
    import numpy as np
    from numpy.random import RandomState
    from notebook_memo import memo

    @memo
    def sample(seed=42, cfg={{"seed": 42}}):
{body}
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert shell.run("sample()") == _expected(form)
        assert shell.run("sample()") == _expected(form)
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]
    assert shell.run("sample.cache_info()[:2]") == (1, 1)


def test_a_generator_seeded_right_after_it_is_built_in_a_cell_gives_no_warning(shell: Shell) -> None:
    shell.run("""
    import numpy as np
    from notebook_memo import memo
    %load_ext notebook_memo
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("""
        %%memo
        rs = np.random.RandomState()
        rs.seed(42)
        x = float(rs.rand())
        """)
    assert shell["x"] == EXPECTED["numpy"]
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


STILL_RANDOM = {
    "seeded_in_a_branch": "rs = np.random.RandomState()\nif flag:\n    rs.seed(42)\nreturn float(rs.rand())",
    "seeded_after_a_draw": "rs = np.random.RandomState()\nx = float(rs.rand())\nrs.seed(42)\nreturn x",
    "another_object_seeded": "rs = np.random.RandomState()\nother = np.random.RandomState(1)\nother.seed(42)\n"
                             "return float(rs.rand())",
    "seeded_with_none": "rs = np.random.RandomState()\nrs.seed(None)\nreturn float(rs.rand())",
    "seeded_with_a_computed_none": 'rs = np.random.RandomState()\nrs.seed(cfg.get("none"))\n'
                                   "return float(rs.rand())",
    "seeded_without_a_seed": "g = random.Random()\ng.seed()\nreturn g.random()",
    "seeded_by_its_other_parameter": "g = random.Random()\ng.seed(version=2)\nreturn g.random()",
    "drawn_by_a_handler": "g = random.Random()\ntry:\n    g.seed(int(text))\nexcept ValueError:\n"
                          "    return g.random()\nreturn g.random()",
    "drawn_by_a_handler_around_both": "try:\n    g = random.Random()\n    g.seed(int(text))\nexcept ValueError:\n"
                                      "    return g.random()\nreturn g.random()",
    "another_name_seeded": "g = random.Random()\nh = g\nh.seed(7)\nreturn g.random()",
    "a_subclass_whose_seed_does_not_seed": "class Mine(np.random.RandomState):\n    def seed(self, seed=None):\n"
                                           "        pass\nrs = Mine()\nrs.seed(42)\nreturn float(rs.rand())",
}


@pytest.mark.parametrize("form", sorted(STILL_RANDOM))
def test_a_generator_built_without_a_seed_and_not_surely_seeded_before_a_draw_still_warns(form: str,
                                                                                         shell: Shell) -> None:
    body = textwrap.indent(STILL_RANDOM[form], " " * 8)
    shell.run(f"""
    import random
    import numpy as np
    from notebook_memo import memo

    @memo
    def sample(flag=False, cfg={{}}, text="seven"):
{body}
    """)
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run("sample()")


# -- explaining a first run right after it --------------------------------------------------------------------------


def test_explain_last_right_after_a_first_run_says_its_result_is_stored(shell: Shell) -> None:
    shell.run("""
    %load_ext notebook_memo
    from notebook_memo import memo

    @memo
    def double(x):
        return x * 2

    double(1)
    REPORT = str(double.explain_last())
    """)
    report = shell["REPORT"]
    assert "MISS" in report and "first run" in report and "stored now" in report, report
    assert "nothing is cached" not in report, report
    magic = str(shell.run("%memo explain double"))
    assert "stored now" in magic and "nothing is cached" not in magic, magic
    assert str(shell.run("double.explain(1)")).startswith("double: HIT"), "the entry explain_last spoke of"


def test_explain_last_after_a_first_run_whose_entry_was_cleared_says_it_is_not_stored(shell: Shell) -> None:
    shell.run("""
    from notebook_memo import memo

    @memo
    def double(x):
        return x * 2

    double(1)
    double.clear()
    """)
    report = str(shell.run("double.explain_last()"))
    assert "first run" in report and "not stored now" in report and "nothing is cached" not in report, report


def test_explain_after_a_cell_s_first_run_says_its_result_is_stored(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\nA = 2")
    shell.run("%%memo twice\nB = A * 2")
    report = str(shell.run("%memo explain twice"))
    assert "first run" in report and "stored now" in report and "nothing is cached" not in report, report


# -- a torch generator seeded from entropy, then by a seed, before its first draw ----------------------------------

TORCH_SEEDED = {
    "local": "g = torch.Generator()\ng.seed()\ng.manual_seed(0)",
    "argument_seed": "g = torch.Generator()\ng.seed()\ng.manual_seed(seed)",
    "never_from_entropy": "g = torch.Generator()\ng.manual_seed(0)",
    "chained": "g = torch.Generator().manual_seed(0)",
}


@pytest.mark.parametrize("form", sorted(TORCH_SEEDED))
def test_a_torch_generator_seeded_before_its_first_draw_gives_no_warning(form: str, shell: Shell) -> None:
    body = textwrap.indent(f"{TORCH_SEEDED[form]}\nreturn float(torch.rand(1, generator=g))", " " * 8)
    shell.run(f"""
    import torch
    from notebook_memo import memo

    @memo
    def sample(seed=0):
{body}
    """)
    expected = float(torch.rand(1, generator=torch.Generator().manual_seed(0)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert shell.run("sample()") == expected
        assert shell.run("sample()") == expected
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


def test_a_global_torch_generator_seeded_before_its_first_draw_gives_no_warning(shell: Shell) -> None:
    shell.run("""
    import torch
    from notebook_memo import memo
    GEN = torch.Generator()

    @memo
    def sample():
        GEN.seed()
        GEN.manual_seed(3)
        return float(torch.rand(1, generator=GEN))
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("sample()")
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


TORCH_STILL_RANDOM = {
    "drawn_between": "g = torch.Generator()\ng.seed()\nx = float(torch.rand(1, generator=g))\ng.manual_seed(0)\n"
                     "return x",
    "another_generator_seeded": "g = torch.Generator()\nh = torch.Generator()\ng.seed()\nh.manual_seed(0)\n"
                                "return float(torch.rand(1, generator=g))",
    "seeded_in_a_branch": "g = torch.Generator()\ng.seed()\nif flag:\n    g.manual_seed(0)\n"
                          "return float(torch.rand(1, generator=g))",
    "drawn_by_a_handler": "g = torch.Generator()\ntry:\n    g.seed()\n    g.manual_seed(text)\nexcept RuntimeError:\n"
                          "    pass\nreturn float(torch.rand(1, generator=g))",
    "its_seed_kept": "g = torch.Generator()\ns = g.seed()\ng.manual_seed(s)\nreturn float(torch.rand(1, generator=g))",
}


@pytest.mark.parametrize("form", sorted(TORCH_STILL_RANDOM))
def test_a_torch_generator_seeded_from_entropy_and_drawn_from_still_warns(form: str, shell: Shell) -> None:
    body = textwrap.indent(TORCH_STILL_RANDOM[form], " " * 8)
    shell.run(f"""
    import torch
    from notebook_memo import memo

    @memo
    def sample(flag=False, text="seven"):
{body}
    """)
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run("sample()")
