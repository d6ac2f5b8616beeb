"""What counts as the user's code: judged by where code lives, never by the name it claims."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Shell
from tests.test_code_values import APPLY, SETUP, call_twice_then_edit, memo_use, runs


@pytest.fixture
def nb(shell: Shell, tmp_path: Path) -> Iterator[Shell]:
    shell.run(SETUP)
    shell.run(APPLY)
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield shell
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


TAGGED = """
import json
def tagged(fn):
    @functools.wraps(fn)
    def inner(v):
        return f'{v}' * SCALE
    return inner
dumps = tagged(json.dumps)
"""


def test_a_wrapper_that_copies_a_library_name_is_still_user_code(nb: Shell) -> None:
    nb.run(TAGGED)
    memo_use(nb, "dumps(x)")
    call_twice_then_edit(nb, "use(1)", "SCALE = 2")


def test_a_wrapper_that_copies_a_library_name_as_an_argument(nb: Shell) -> None:
    nb.run(TAGGED)
    call_twice_then_edit(nb, "apply(dumps, 1)", "SCALE = 3")


def test_a_function_exec_d_into_its_own_namespace_is_user_code(nb: Shell) -> None:
    nb.run("ns = {'K': 2}\nexec('def f(v):\\n    return v * K', ns)\nf = ns['f']")
    call_twice_then_edit(nb, "apply(f, 2)", "ns['K'] = 5")


def test_a_module_loaded_from_a_path_is_user_code(nb: Shell, tmp_path: Path) -> None:
    path = tmp_path / "feats_by_path.py"
    path.write_text("def f(x):\n    return x * 2\n")
    nb.run("import importlib.util\ndef load(path):\n"
           "    spec = importlib.util.spec_from_file_location('feats_by_path', path)\n"
           "    mod = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(mod)\n    return mod\n"
           f"feats = load({str(path)!r})")
    memo_use(nb, "feats.f(x)")
    nb.run("use(5)\nuse(5)")
    assert runs(nb) == 1
    path.write_text("def f(x):\n    return x * 3\n")
    nb.run(f"feats = load({str(path)!r})")
    nb.run("v = use(5)\nw = apply(feats.f, 5)\nw2 = apply(feats.f, 5)")
    assert (nb["v"], nb["w"], runs(nb)) == (15, 15, 3)


def _hit_then_miss_after_edit(nb: Shell, path: Path, text: str, module: str) -> None:
    """Call use(5) twice (one run), edit and reload the module: the next call runs, with the new code."""
    nb.run("use(5)\nuse(5)")
    path.write_text(text)
    nb.run(f"import importlib, {module}\nimportlib.reload({module})")
    nb.run("v = use(5)")
    assert (nb["v"], runs(nb)) == (15, 2)


def test_a_namespace_package_module_is_user_code(nb: Shell, tmp_path: Path) -> None:
    (tmp_path / "nsutils").mkdir()
    helpers = tmp_path / "nsutils" / "helpers.py"
    helpers.write_text("def f(x):\n    return x * 2\n")
    nb.run("@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    import nsutils.helpers\n"
           "    return nsutils.helpers.f(x)")
    _hit_then_miss_after_edit(nb, helpers, "def f(x):\n    return x * 3\n", "nsutils.helpers")


def test_a_user_module_named_like_the_standard_library_is_user_code(nb: Shell, tmp_path: Path) -> None:
    module = tmp_path / "statistics.py"
    module.write_text("def mean(x):\n    return x * 2\n")
    saved = sys.modules.pop("statistics", None)
    try:
        nb.run("import statistics\n@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n"
               "    return statistics.mean(x)")
        _hit_then_miss_after_edit(nb, module, "def mean(x):\n    return x * 3\n", "statistics")
    finally:
        if saved is not None:
            sys.modules["statistics"] = saved


@pytest.mark.parametrize("edit", [
    ("mod_whole.py", "from mod_impl import g\nLIMIT = 3\n", "from mod_impl import g\nLIMIT = 4\n"),
    ("mod_impl.py", "def g(x):\n    return x * 2\n", "def g(x):\n    return x * 3\n"),
], ids=["data", "re-exported-function"])
def test_a_module_used_whole_counts_its_data_and_what_it_re_exports(nb: Shell, tmp_path: Path,
                                                                   edit: tuple[str, str, str]) -> None:
    (tmp_path / "mod_impl.py").write_text("def g(x):\n    return x * 2\n")
    (tmp_path / "mod_whole.py").write_text("from mod_impl import g\nLIMIT = 3\n")
    nb.run("import mod_whole\n@memo\ndef use(name, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n"
           "    return getattr(mod_whole, name)(x) + getattr(mod_whole, 'LIMIT')")
    nb.run("use('g', 5)\nuse('g', 5)")
    assert runs(nb) == 1
    name, _, text = edit
    (tmp_path / name).write_text(text)
    nb.run("import importlib, mod_impl\nimportlib.reload(mod_impl)\nimportlib.reload(mod_whole)")
    nb.run("use('g', 5)")
    assert runs(nb) == 2
