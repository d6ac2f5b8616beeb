"""After code edits: helpers and constants in other cells are part of the key; explain; stale cleanup."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning, StaleEntriesWarning, memo
from notebook_memo._dependencies import WHOLE_ENVIRONMENT
from tests.conftest import Shell, run_kernel

SETUP = """
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
"""

HELPER = """
def normalise(x):
    return x / 10
"""

CONSTANT = "THRESHOLD = 0.7\n"

FEATURES = """
@memo
def features(n):
    RUNS['features'] = RUNS.get('features', 0) + 1
    return [normalise(i) > THRESHOLD for i in range(n)]
"""


@pytest.fixture
def nb(shell: Shell) -> Shell:
    shell.run(SETUP)
    shell.run(HELPER)
    shell.run(CONSTANT)
    shell.run(FEATURES)
    shell.run("first = features(12)")
    return shell


def runs(shell: Shell) -> int:
    return int(shell["RUNS"]["features"])


def test_rerunning_unchanged_cells_keeps_the_hit(nb: Shell) -> None:
    nb.run(HELPER)
    nb.run(CONSTANT)
    nb.run(FEATURES)
    nb.run("again = features(12)")
    assert runs(nb) == 1


def test_helper_edit_in_another_cell_is_a_miss(nb: Shell) -> None:
    nb.run(HELPER.replace("x / 10", "x / 5"))
    nb.run("edited = features(12)")
    assert runs(nb) == 2
    assert nb["edited"] != nb["first"]


def test_helper_comment_edit_is_a_hit(nb: Shell) -> None:
    nb.run(HELPER.replace("    return x / 10", "    # scale down\n    return x / 10  # tenths"))
    nb.run("again = features(12)")
    assert runs(nb) == 1


def test_constant_change_is_a_miss_and_changing_it_back_is_a_hit(nb: Shell) -> None:
    nb.run("THRESHOLD = 0.2")
    nb.run("low = features(12)")
    assert runs(nb) == 2
    nb.run("THRESHOLD = 0.7")
    nb.run("back = features(12)")
    assert runs(nb) == 2
    assert nb["back"] == nb["first"]


def test_unrelated_function_edit_is_a_hit(nb: Shell) -> None:
    nb.run("def unrelated(): return 1")
    nb.run("def unrelated(): return 2")
    nb.run("UNRELATED_CONSTANT = [1, 2, 3]")
    nb.run("again = features(12)")
    assert runs(nb) == 1


def test_transitive_helper_edit_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("SCALE = 10\ndef inner(x):\n    return x * SCALE")
    shell.run("def outer(x):\n    return inner(x) + 1")
    shell.run("@memo\ndef top(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return outer(x)")
    shell.run("top(1)")
    shell.run("SCALE = 11")
    shell.run("v = top(1)")
    assert shell["RUNS"]["n"] == 2 and shell["v"] == 12
    shell.run("def inner(x):\n    return x * SCALE * 2")
    shell.run("v = top(1)")
    assert shell["RUNS"]["n"] == 3 and shell["v"] == 23


def test_mutating_a_global_container_in_place_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("WEIGHTS = {'a': 1.0}")
    shell.run("@memo\ndef score(k):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return WEIGHTS[k]")
    shell.run("score('a')")
    shell.run("WEIGHTS['a'] = 2.0")
    shell.run("v = score('a')")
    assert shell["RUNS"]["n"] == 2 and shell["v"] == 2.0


def test_class_method_edit_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("class Scaler:\n    def apply(self, x):\n        return x * 2")
    shell.run("@memo\ndef run(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return Scaler().apply(x)")
    shell.run("run(3)")
    shell.run("class Scaler:\n    def apply(self, x):\n        return x * 3")
    shell.run("v = run(3)")
    assert shell["RUNS"]["n"] == 2 and shell["v"] == 9


def test_default_argument_of_a_helper_is_part_of_the_key(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("def helper(x, k=1):\n    return x + k")
    shell.run("@memo\ndef run(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return helper(x)")
    shell.run("run(3)")
    shell.run("def helper(x, k=2):\n    return x + k")
    shell.run("v = run(3)")
    assert shell["RUNS"]["n"] == 2 and shell["v"] == 5


def test_unhashable_global_is_left_out_with_one_warning(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("import threading\nCLIENT_LOCK = threading.Lock()")
    shell.run("@memo\ndef fetch(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    with CLIENT_LOCK:\n        return x")
    with pytest.warns(MemoWarning, match="CLIENT_LOCK"):
        shell.run("fetch(1)")
    shell.run("fetch(1)")
    assert shell["RUNS"]["n"] == 1
    report = shell.run("fetch.explain(1)")
    assert "CLIENT_LOCK" in str(report)


def test_user_module_helper_edit_is_a_miss(tmp_path: Path, shell: Shell) -> None:
    module = tmp_path / "my_helpers_mod.py"
    module.write_text("FACTOR = 2\ndef scale(x):\n    return x * FACTOR\n")
    sys.path.insert(0, str(tmp_path))
    try:
        shell.run(SETUP)
        shell.run("import my_helpers_mod")
        shell.run("@memo\ndef run(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return my_helpers_mod.scale(x)")
        shell.run("run(5)")
        shell.run("run(5)")
        assert shell["RUNS"]["n"] == 1
        module.write_text("FACTOR = 2\ndef scale(x):\n    return x * FACTOR + 1\n")
        shell.run("import importlib; importlib.reload(my_helpers_mod)")
        shell.run("v = run(5)")
        assert shell["RUNS"]["n"] == 2 and shell["v"] == 11
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_helpers_mod", None)


def test_installed_packages_count_by_name_and_version(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("import numpy as np\n@memo\ndef total(n):\n    return float(np.arange(n).sum())")
    shell.run("total(4)")
    report = str(shell.run("total.explain(5)"))
    assert "argument 'n' differs" in report
    call = shell["total"].make_call((4,), {})
    assert "package numpy" in call.deps.parts
    assert not any(label.startswith("np.") for label in call.deps.parts)


def test_helper_and_constant_edits_across_restarted_kernels(cache_dir: Path) -> None:
    record = "v = features(12)\nOUT['runs'] = RUNS.get('features', 0)\nOUT['v'] = v"
    base = [SETUP, HELPER, CONSTANT, FEATURES, record]
    assert run_kernel(base, cache_dir, seed=1)["runs"] == 1
    assert run_kernel(base, cache_dir, seed=2)["runs"] == 0
    cells = [SETUP, HELPER.replace("x / 10", "x / 4"), CONSTANT, FEATURES, record]
    assert run_kernel(cells, cache_dir, seed=3)["runs"] == 1
    cells = [SETUP, HELPER, "THRESHOLD = 0.1\n", FEATURES, record]
    assert run_kernel(cells, cache_dir, seed=4)["runs"] == 1
    cells = [SETUP, HELPER, CONSTANT, "def unrelated():\n    return 42\n", FEATURES, record]
    assert run_kernel(cells, cache_dir, seed=5)["runs"] == 0


# -- explain ------------------------------------------------------------------------------


def test_explain_says_hit(nb: Shell) -> None:
    report = nb.run("features.explain(12)")
    assert report.hit is True and "HIT" in str(report)
    assert "HIT" in report._repr_html_()


def test_explain_names_a_changed_helper(nb: Shell) -> None:
    nb.run(HELPER.replace("x / 10", "x / 3"))
    report = nb.run("features.explain(12)")
    assert report.hit is False
    assert "the code of normalise changed" in str(report)


def test_explain_names_a_changed_global(nb: Shell) -> None:
    nb.run("THRESHOLD = 0.9")
    assert "the value of global THRESHOLD changed" in str(nb.run("features.explain(12)"))


def test_explain_names_the_functions_own_code(nb: Shell) -> None:
    nb.run(FEATURES.replace("for i in range(n)", "for i in range(n + 1)"))
    assert "the function's own code changed" in str(nb.run("features.explain(12)"))


def test_explain_names_the_argument(nb: Shell) -> None:
    report = str(nb.run("features.explain(13)"))
    assert "argument 'n' differs" in report
    assert "own code" not in report


def test_explain_reports_ttl_expiry(counter: object) -> None:
    import time

    @memo(ttl=0.1)
    def f() -> int:
        return 1

    f()
    time.sleep(0.15)
    report = f.explain()
    assert report.hit is False and "expired at" in str(report)


def test_explain_with_nothing_cached() -> None:
    @memo
    def never() -> int:
        return 1

    assert "nothing is cached" in str(never.explain())


# -- stale entries ------------------------------------------------------------------------


def test_clear_stale_removes_exactly_the_outdated_entries(nb: Shell) -> None:
    nb.run("features(3)")
    nb.run(HELPER.replace("x / 10", "x / 2"))
    nb.run("features(12)")
    fn = nb["features"]
    assert fn.cache_info().entries == 3
    assert fn.clear_stale() == 2
    assert fn.cache_info().entries == 1
    assert fn.is_cached(12)


def test_memo_clear_stale_covers_every_function(nb: Shell) -> None:
    nb.run("@memo\ndef other(x):\n    return x")
    nb.run("other(1)")
    nb.run("@memo\ndef other(x):\n    return x + 1")
    with pytest.warns(StaleEntriesWarning, match="other: 1 cached entry"):
        nb.run("other(1)")
    nb.run("THRESHOLD = 0.71")  # a value change is not staleness: both entries stay valid
    nb.run("features(12)")
    assert memo.clear_stale() == 1
    assert nb["features"].cache_info().entries == 2


def test_first_run_after_an_edit_gives_one_stale_notice(cache_dir: Path) -> None:
    calls = "features(12)\nfeatures(13)"
    run_kernel([SETUP, HELPER, CONSTANT, FEATURES, calls], cache_dir)
    edited = [SETUP, HELPER.replace("x / 10", "x / 9"), CONSTANT, FEATURES, calls]
    out = run_kernel(edited, cache_dir, seed=9)
    notices = [w for w in out["_warnings"] if w.startswith("StaleEntriesWarning")]
    assert len(notices) == 1
    assert "2 cached entries" in notices[0] and "clear_stale()" in notices[0]


def test_no_stale_notice_without_older_versions(nb: Shell) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleEntriesWarning)
        nb.run("features(20)")




def test_a_helper_s_keyword_default_changed_in_place_is_a_miss(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo
        def helper(x, *, k=2):
            return x * k
        @memo
        def f(x):
            return helper(x)
    """)
    assert shell.run("f(3)") == 6
    shell.run("helper.__kwdefaults__['k'] = 5")
    assert shell.run("f(3)") == 15
    shell.run("helper.__kwdefaults__['k'] = 2")
    assert shell.run("f(3)") == 6 and shell["f"].hits == 1


@pytest.mark.parametrize("body", [
    "return os.environb.get(b'NBM_SPLIT')",
    "return os.getenvb(b'NBM_SPLIT')",
    "return GET()",  # GET = functools.partial(os.getenv, "NBM_SPLIT")
])
def test_environment_variables_read_through_bytes_or_a_partial_are_keyed(shell: Shell, body: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_SPLIT", "a")
    shell.run(f"""
        import functools, os
        from notebook_memo import memo
        GET = functools.partial(os.getenv, "NBM_SPLIT")
        @memo
        def split():
            {body}
    """)
    first = shell.run("split()")
    monkeypatch.setenv("NBM_SPLIT", "b")
    assert shell.run("split()") != first


def test_an_environment_variable_named_by_keyword_is_not_taken_for_the_default(shell: Shell,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_SPLIT", "a")
    shell.run("""
        import os
        from notebook_memo import memo
        @memo
        def split():
            return os.getenv(default="train", key="NBM_SPLIT")
    """)
    assert shell.run("split()") == "a"  # read by a name the code does not show first: every variable keyed
    assert "env train" not in shell["split"].code_state().deps.parts
    assert WHOLE_ENVIRONMENT in shell["split"].code_state().deps.parts


def test_pandas_options_that_change_results_are_keyed(shell: Shell) -> None:
    import pandas as pd

    shell.run("""
        import pandas as pd
        from notebook_memo import memo
        @memo
        def missing_after_divide(values):
            s = pd.Series(values, dtype="Float64")
            return int((s / s).isna().sum())
    """)
    before = pd.get_option("future.distinguish_nan_and_na")
    try:
        first = shell.run("missing_after_divide([0.0, 1.0])")
        pd.set_option("future.distinguish_nan_and_na", not before)
        second = shell.run("missing_after_divide([0.0, 1.0])")
        divide = shell["missing_after_divide"]
        assert second == divide.uncached([0.0, 1.0]) and divide.misses == 2
        assert {first, second} == {0, 1}
    finally:
        pd.set_option("future.distinguish_nan_and_na", before)
    assert shell.run("missing_after_divide([0.0, 1.0])") == first and shell["missing_after_divide"].hits == 1
