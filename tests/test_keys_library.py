"""Keys of what a body reads from libraries and from the edges of the user's code: which library object a
global, cell, class attribute or partial holds; a library function patched with the user's own; a library
decorator's arguments; a memoized helper's version; library versions of values passed as arguments; constants
edited on disk; values nested too deeply to hash. Each must key apart where it changed (no false hit), alike
across restarts (no false miss), and never break the call."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning, UnhashableArgument
from tests.conftest import RUNS_SETUP, Shell, run_kernel

SETUP = RUNS_SETUP

# -- values nested too deeply to hash ------------------------------------------------------------

DEEP = """
def nest(depth):
    value = ()
    for i in range(depth):
        value = (i, value)
    return value
DEEP = nest({depth})
def depth_of(value):
    n = 0
    while value:
        n, value = n + 1, value[1]
    return n
"""


def test_a_deeply_nested_tuple_global_is_keyed(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(DEEP.format(depth=400))
    shell.run("@memo\ndef g():\n    ran('g')\n    return depth_of(DEEP)")
    shell.run("g()\ng()")
    shell.run("DEEP = nest(401)")
    shell.run("v = g()")
    assert shell["v"] == 401 and shell["RUNS"]["g"] == 2


def test_a_global_nested_too_deeply_to_hash_is_left_out_with_a_warning(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(DEEP.format(depth=200_000))  # past what a walk on a deep stack takes (about 33,000 tuples)
    shell.run("@memo\ndef g():\n    ran('g')\n    return depth_of(DEEP)")
    with pytest.warns(MemoWarning, match="'DEEP' cannot be hashed"):
        shell.run("v = g()")
    assert shell["v"] == 200_000


@pytest.mark.parametrize("form", ["default", "closure"])
@pytest.mark.parametrize("depth", [400, 20000, 200_000])
def test_a_helper_holding_a_deeply_nested_tuple_runs(shell: Shell, form: str, depth: int) -> None:
    shell.run(SETUP)
    shell.run(DEEP.format(depth=depth))
    if form == "default":
        shell.run("def helper(x=DEEP):\n    return depth_of(x)")
    else:
        shell.run("def make():\n    t = DEEP\n    return lambda: depth_of(t)\nhelper = make()")
    shell.run("@memo\ndef g():\n    ran('g')\n    return helper()")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("v = g()\nv = g()")
    assert shell["v"] == depth and shell["RUNS"]["g"] == 1
    left_out = [w for w in caught if "cannot be hashed" in str(w.message)]
    assert bool(left_out) == (depth == 200_000)  # 20,000 is keyed, on a deep stack


def test_a_function_argument_with_a_deeply_nested_default_runs(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(DEEP.format(depth=400))
    shell.run("def helper(x=DEEP):\n    return depth_of(x)")
    shell.run("@memo\ndef g(fn):\n    ran('g')\n    return fn()")
    shell.run("v = g(helper)")
    assert shell["v"] == 400


def test_a_deeply_nested_tuple_argument_is_refused(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(DEEP.format(depth=200_000))
    shell.run("@memo\ndef g(x):\n    ran('g')\n    return depth_of(x)")
    result = shell.run_raw("g(DEEP)")
    assert isinstance(result.error_in_exec, UnhashableArgument)
    assert "nested too deeply" in str(result.error_in_exec)


def test_a_class_attribute_nesting_a_function_deeply_runs_and_is_keyed(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("def nest_over(leaf, depth):\n    value = (leaf,)\n    for i in range(depth):\n"
              "        value = (i, value)\n    return value")
    shell.run("def double(x):\n    return 2 * x\nclass Table:\n    ROWS = nest_over(double, 400)\n"
              "    def apply(self, x):\n        value = self.ROWS\n        while len(value) == 2:\n"
              "            value = value[1]\n        return value[0](x)")
    shell.run("@memo\ndef g(x):\n    ran('g')\n    return Table().apply(x)")
    shell.run("g(3)\ng(3)")
    shell.run("def double(x):\n    return 3 * x\nTable.ROWS = nest_over(double, 400)")
    shell.run("v = g(3)")
    assert shell["v"] == 9 and shell["RUNS"]["g"] == 2


def test_a_partial_binding_a_deeply_nested_tuple_runs(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(DEEP.format(depth=400))
    shell.run("import functools\nhelper = functools.partial(depth_of, DEEP)")
    shell.run("@memo\ndef g():\n    ran('g')\n    return helper()")
    shell.run("v = g()\nv = g()")
    assert shell["v"] == 400 and shell["RUNS"]["g"] == 1


# -- a user module edited on disk, not reloaded ---------------------------------------------------

ON_DISK = """
import os, sys
sys.path.insert(0, {folder!r})
import mymod_consts
"""
EDIT = """
with open(os.path.join({folder!r}, "mymod_consts.py"), "w") as f:
    f.write({source!r})
"""
CALL = """
@memo
def g():
    ran('g')
    return repr(mymod_consts.helper())
OUT['v'] = g()
OUT['runs'] = RUNS.get('g', 0)
"""


@pytest.mark.parametrize(("old", "new"), [
    ("(1, 2)", "(1.0, 2)"), ("0.0", "-0.0"), ("(1, 0)", "(True, False)"), ("0j", "-0j"),
    ("((1, 2), 3)", "((1.0, 2), 3)"), ("(0.0, 1)", "(-0.0, 1)")])
def test_a_module_constant_whose_type_or_sign_changed_on_disk_is_keyed_by_the_code_that_runs(
        tmp_path: Path, cache_dir: Path, old: str, new: str) -> None:
    folder = tmp_path / "mods"
    folder.mkdir()
    source = "def helper():\n    return {}\n"
    (folder / "mymod_consts.py").write_text(source.format(old))
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    # The first kernel imported the old code, then the file changed: its result is the old code's.
    edited = run_kernel([SETUP, ON_DISK.format(folder=str(folder)),
                         EDIT.format(folder=str(folder), source=source.format(new)), CALL], cache_dir, seed=1, env=env)
    assert edited["v"] == repr(eval(old))
    restarted = run_kernel([SETUP, ON_DISK.format(folder=str(folder)), CALL], cache_dir, seed=2, env=env)
    assert restarted["v"] == repr(eval(new)) and restarted["runs"] == 1


# -- which library object a name holds -------------------------------------------------------------

# (setup before, setup after, what the body returns): the body reads the library object through a global,
# a closure cell, a class attribute, a partial or an lru_cache, and each swap must change the key.
SWAPS = {
    "builtin class": ("CAST = int", "CAST = float", "repr(CAST('7'))"),
    "builtin function": ("import math\nROUND = math.floor", "ROUND = math.ceil", "ROUND(2.5)"),
    "library function": ("import statistics\nAGG = statistics.mean", "AGG = statistics.median", "AGG([1, 2, 9])"),
    "library class": ("from collections import OrderedDict, Counter\nKIND = OrderedDict", "KIND = Counter",
                      "type(KIND()).__name__"),
    "stdlib module": ("import cmath, math\nM = cmath", "M = math", "repr(M.sqrt(4))"),
    "library submodule": ("import numpy as np\nM = np.random", "M = np.fft", "M.__name__"),
    "closure cell": ("import math\ndef make(fn):\n    return lambda x: fn(x)\nH = make(math.floor)",
                     "H = make(math.ceil)", "H(2.5)"),
    "class attribute": ("import math\nclass Rounder:\n    op = math.floor", "Rounder.op = math.ceil",
                        "Rounder.op(2.5)"),
    "partial": ("import functools, statistics\nOP = functools.partial(statistics.mean)",
                "OP = functools.partial(statistics.median)", "OP([1, 2, 9])"),
    "lru_cache": ("import functools, math\nOP = functools.lru_cache(math.floor)", "OP = functools.lru_cache(math.ceil)",
                  "OP(2.5)"),
}


@pytest.mark.parametrize("form", sorted(SWAPS))
def test_swapping_the_library_object_a_name_holds_is_a_miss(shell: Shell, form: str) -> None:
    before, after, body = SWAPS[form]
    shell.run(SETUP)
    shell.run(before)
    shell.run(f"@memo\ndef g():\n    ran('g')\n    return {body}")
    shell.run("first = g()\nfirst = g()")
    shell.run(after)
    shell.run(f"v = g()\nexpected = {body}")
    assert shell["RUNS"]["g"] == 2 and shell["v"] == shell["expected"] != shell["first"]


def test_swapping_a_library_class_a_cell_reads_is_a_miss(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("CAST = int")
    shell.run("%%memo parse\nvalue = CAST('7')")
    shell.run("CAST = float")
    shell.run("%%memo parse\nvalue = CAST('7')")
    assert repr(shell["value"]) == "7.0"


def test_the_library_object_a_global_holds_keys_alike_across_restarts(cache_dir: Path) -> None:
    def kernel(which: str, seed: int) -> dict[str, object]:
        cells = [SETUP, f"import statistics\nCAST = {which}\nAGG = statistics.{'mean' if which == 'int' else 'median'}",
                 "@memo\ndef g(s, xs):\n    ran('g')\n    return repr(CAST(s)), AGG(xs)",
                 "OUT['v'] = g('7', [1, 2, 9])\nOUT['runs'] = RUNS.get('g', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel("int", 1) == {"v": ["7", 4], "runs": 1, "_warnings": []}
    assert kernel("float", 2)["v"] == ["7.0", 2]
    assert kernel("float", 3)["runs"] == 0 and kernel("int", 4)["runs"] == 0


# -- a library function patched with the user's own -----------------------------------------------

PATCH = """
def robust_mean(xs):
    return sorted(xs)[len(xs) // 2]{edit}
statistics.fmean = robust_mean
"""


def test_editing_and_reapplying_a_monkeypatch_of_a_library_function_is_a_miss(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    import statistics

    monkeypatch.setattr(statistics, "fmean", statistics.fmean)  # put back after the test
    shell.run(SETUP)
    shell.run("import statistics")
    shell.run(PATCH.format(edit=""))
    shell.run("@memo\ndef summary(xs):\n    ran('s')\n    return statistics.fmean(xs)")
    shell.run("summary([1, 2, 9])\nsummary([1, 2, 9])")
    shell.run(PATCH.format(edit=" * 10"))
    shell.run("v = summary([1, 2, 9])")
    assert shell["v"] == 20 and shell["RUNS"]["s"] == 2


def test_patching_a_library_function_after_the_first_call_and_undoing_it_are_keyed(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    import email.utils

    monkeypatch.setattr(email.utils, "quote", email.utils.quote)
    shell.run(SETUP)
    shell.run("import email.utils\noriginal = email.utils.quote")
    shell.run("@memo\ndef q(s):\n    ran('q')\n    return email.utils.quote(s)")
    shell.run("plain = q('a\"b')")
    shell.run("def loud(s):\n    return s.upper()\nemail.utils.quote = loud")
    shell.run("patched = q('a\"b')")
    shell.run("email.utils.quote = original")
    shell.run("undone = q('a\"b')")
    assert shell["patched"] == 'A"B' and shell["undone"] == shell["plain"] == 'a\\"b'
    assert shell["RUNS"]["q"] == 2


# -- a memoized helper's version= ------------------------------------------------------------------

OUTSIDE = "class _Source(list):\n    def __memo_key__(self): return 'outside'\n"
VERSIONED = """
@memo(version={version})
def load():
    return SOURCE[0]
"""


def test_bumping_a_memoized_helper_s_version_is_a_miss_for_its_callers(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(OUTSIDE + "SOURCE = _Source([10])")
    shell.run(VERSIONED.format(version=1))
    shell.run("@memo\ndef analyze():\n    ran('a')\n    return load() * 2\n"
              "class Report:\n    @memo(version=1)\n    def total(self):\n        return SOURCE[0]\n"
              "@memo\ndef report():\n    ran('r')\n    return Report().total() * 3")
    shell.run("analyze()\nreport()")
    shell.run("SOURCE[0] = 20")  # outside what keys can see: the README says to bump version=
    shell.run(VERSIONED.format(version=2))
    shell.run("class Report:\n    @memo(version=2)\n    def total(self):\n        return SOURCE[0]")
    shell.run("a = analyze()\nr = report()")
    assert (shell["a"], shell["r"]) == (40, 60) and shell["RUNS"] == {"a": 2, "r": 2}


def test_a_memoized_helper_s_version_keys_alike_across_restarts(cache_dir: Path) -> None:
    def kernel(version: int, seed: int) -> dict[str, object]:
        cells = [SETUP, OUTSIDE + f"SOURCE = _Source([{version * 10}])", VERSIONED.format(version=version),
                 "@memo\ndef analyze():\n    ran('a')\n    return load() * 2",
                 "OUT['v'] = analyze()\nOUT['runs'] = RUNS.get('a', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel(1, 1)["v"] == 20
    assert kernel(2, 2)["v"] == 40
    assert kernel(2, 3)["runs"] == 0 and kernel(1, 4)["v"] == 20


# -- a library decorator's arguments ---------------------------------------------------------------

ERRSTATE = """
import numpy as np
@np.errstate(invalid={mode!r})
def safe_sqrt(x):
    return np.sqrt(x)
"""
ERRSTATE_CALLER = """
@memo
def checked(x):
    ran('c')
    try:
        return float(np.nan_to_num(safe_sqrt(np.float64(x)), nan=-1.0))
    except FloatingPointError:
        return 'raised'
"""
AUTOCAST = """
import torch
@torch.autocast("cpu", {settings})
def project(x, w):
    return x @ w
"""
AUTOCAST_CALLER = """
@memo
def score(n):
    ran('s')
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    return project(x, w).float().sum().item()
"""


def test_editing_a_library_decorator_s_arguments_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(ERRSTATE.format(mode="ignore"))
    shell.run(ERRSTATE_CALLER)
    shell.run("first = checked(-1.0)\nfirst = checked(-1.0)")
    shell.run(ERRSTATE.format(mode="raise"))
    shell.run("v = checked(-1.0)")
    assert (shell["first"], shell["v"]) == (-1.0, "raised") and shell["RUNS"]["c"] == 2


def test_editing_torch_autocast_s_arguments_on_a_helper_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(AUTOCAST.format(settings="dtype=torch.bfloat16"))
    shell.run(AUTOCAST_CALLER)
    shell.run("first = score(32)\nfirst = score(32)")
    shell.run(AUTOCAST.format(settings="enabled=False"))
    shell.run("v = score(32)\nexpected = score.__wrapped__(32)")
    assert shell["v"] == shell["expected"] != shell["first"] and shell["RUNS"]["s"] == 3


@pytest.mark.parametrize(("helper", "caller", "call"), [
    (ERRSTATE.format(mode="ignore"), ERRSTATE_CALLER, "checked(-1.0)"),
    (AUTOCAST.format(settings="dtype=torch.bfloat16"), AUTOCAST_CALLER, "score(16)")])
def test_a_library_decorator_s_arguments_key_alike_across_restarts(
        cache_dir: Path, helper: str, caller: str, call: str) -> None:
    # The second kernel runs the decorated helper by itself first, as a notebook may: what that use leaves on
    # the decorator (autocast keeps the state it puts back on exit) is not a setting.
    record = f"OUT['v'] = {call}\nOUT['runs'] = sum(RUNS.values())"
    first = run_kernel([SETUP, helper, caller, record], cache_dir, seed=1)
    used = "safe_sqrt(np.float64(4.0))" if "safe_sqrt" in helper else "project(torch.ones(2, 2), torch.ones(2, 2))"
    second = run_kernel([SETUP, helper, used, caller, record], cache_dir, seed=2)
    assert first["runs"] == 1 and second["runs"] == 0 and second["v"] == first["v"]
    assert not [w for w in second["_warnings"] if "cannot be hashed" in w]


SECTION = """
import contextlib
@contextlib.contextmanager
def section(scale):
    yield scale{edit}
@section({scale})
def helper(x):
    return x + 1
"""


@pytest.mark.parametrize("edit", [{"scale": 3, "edit": ""}, {"scale": 2, "edit": "\n    print('left')"}])
def test_a_contextmanager_of_the_user_s_decorating_a_helper_is_keyed(shell: Shell, edit: dict[str, object]) -> None:
    shell.run(SETUP)
    shell.run(SECTION.format(scale=2, edit=""))
    shell.run("@memo\ndef g(x):\n    ran('g')\n    return helper(x)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("g(1)\ng(1)")
    assert not [w for w in caught if "cannot be hashed" in str(w.message)]
    shell.run(SECTION.format(**edit))
    shell.run("g(1)")
    assert shell["RUNS"]["g"] == 2


def test_a_library_wrapper_without_wrapped_is_followed_to_the_user_s_function(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("import reprlib\n@reprlib.recursive_repr('...')\ndef show(obj):\n    return 'v1'")
    shell.run("@memo\ndef g():\n    ran('g')\n    return show(object())")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("g()\ng()")
    # its set of calls running is working state, left out silently
    assert not [w for w in caught if "cannot be hashed" in str(w.message)]
    shell.run("@reprlib.recursive_repr('...')\ndef show(obj):\n    return 'v2'")
    shell.run("v = g()")
    assert shell["v"] == "v2" and shell["RUNS"]["g"] == 2


def install_fakelib(base: Path, source: str) -> dict[str, str]:
    """Install (or upgrade) a package ``fakelib`` in a user site under ``base``, so that it is a library, not the
    user's code; return the environment a kernel needs (its cells then start with ``USER_SITE``)."""
    env = {**os.environ, "PYTHONUSERBASE": str(base)}
    site_dir = subprocess.run([sys.executable, "-c", "import site; print(site.getusersitepackages())"], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
    package = Path(site_dir) / "fakelib"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(source))
    return {"PYTHONUSERBASE": str(base), "PYTHONDONTWRITEBYTECODE": "1"}


USER_SITE = "import site, sys\nsys.path.insert(0, site.getusersitepackages())"

FAKELIB_SCALED = """
import functools
def scaled(factor):
    store = {}  # the wrapper's own cache: filled as it runs
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(x):
            if x not in store:
                store[x] = fn(x) * factor
            return store[x]
        return wrapper
    return decorate
"""


def test_a_library_decorator_s_settings_are_keyed_and_its_cache_left_out(tmp_path: Path, cache_dir: Path) -> None:
    env = install_fakelib(tmp_path / "userbase", FAKELIB_SCALED)

    def kernel(factor: int, seed: int) -> dict[str, object]:
        cells = [USER_SITE, SETUP, f"import fakelib\n@fakelib.scaled({factor})\ndef helper(x):\n    return x + 1",
                 "OFFSET = 0.5", "@memo\ndef g(x):\n    ran('g')\n    return helper(x) + OFFSET",
                 "g(3)", "OFFSET = 0.5",  # an equal value bound anew: g is resolved again, its helper's cache full
                 "OUT['v'] = g(3)\nOUT['runs'] = RUNS.get('g', 0)"]
        return run_kernel(cells, cache_dir, seed=seed, env=env)

    first = kernel(2, 1)
    assert first["v"] == 8.5 and first["runs"] == 1
    # the wrapper's cache is working state, left out silently
    assert not any("cannot be hashed" in w for w in first["_warnings"])  # type: ignore[attr-defined]
    assert kernel(2, 2)["runs"] == 0
    assert kernel(3, 3)["v"] == 12.5


def test_a_library_decorator_s_arguments_count_for_a_helper_passed_as_an_argument(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(ERRSTATE.format(mode="ignore"))
    shell.run("@memo\ndef apply(fn, x):\n    ran('a')\n    try:\n        return float(fn(np.float64(x)))\n"
              "    except FloatingPointError:\n        return 'raised'")
    shell.run("first = apply(safe_sqrt, -1.0)\nfirst = apply(safe_sqrt, -1.0)")
    shell.run(ERRSTATE.format(mode="raise"))
    shell.run("v = apply(safe_sqrt, -1.0)")
    assert shell["v"] == "raised" and shell["RUNS"]["a"] == 2


# -- library versions of values ----------------------------------------------------------------------

FAKELIB = """
__version__ = {version!r}
def transform(x):
    return x * {factor}
class Scaler:
    def __init__(self, k):
        self.k = k
    def apply(self, x):
        return x * self.k * {factor}
"""
PASSED = """
@memo
def apply(fn, x):
    ran('apply')
    return fn(x)
@memo
def run(scaler, x):
    ran('run')
    return scaler.apply(x)
@memo
def through(module, x):
    ran('through')
    return module.transform(x)
@memo
def held(x):
    ran('held')
    return OPS[0](x)
"""
RECORD = """
OPS = (fakelib.transform,)
OUT['v'] = [apply(fakelib.transform, 3), run(fakelib.Scaler(1), 3), through(fakelib, 3), held(3)]
OUT['runs'] = dict(RUNS)
"""


@pytest.mark.parametrize("track", [True, False])
def test_library_code_passed_as_a_value_is_keyed_by_its_package_version(
        tmp_path: Path, cache_dir: Path, track: bool) -> None:
    base = tmp_path / "userbase"
    setting = "" if track else "import notebook_memo\nnotebook_memo.configure(track_versions=False)"
    cells = [USER_SITE, setting, SETUP, "import fakelib", PASSED, RECORD]
    env = install_fakelib(base, FAKELIB.format(version="1.0", factor=2))
    assert run_kernel(cells, cache_dir, seed=1, env=env)["v"] == [6, 6, 6, 6]
    assert run_kernel(cells, cache_dir, seed=2, env=env)["runs"] == {}  # a restart: every call a hit
    env = install_fakelib(base, FAKELIB.format(version="2.0", factor=3))
    upgraded = run_kernel(cells, cache_dir, seed=3, env=env)
    if track:
        assert upgraded["v"] == [9, 9, 9, 9]
    else:  # versions not keyed, as documented for track_versions=False
        assert upgraded["runs"] == {}


def test_a_library_builtin_passed_as_a_value_is_keyed_by_its_package_version(cache_dir: Path) -> None:
    def kernel(version: str, seed: int) -> dict[str, object]:
        # numpy reports the version it was told to: an upgrade as the key sees one.
        cells = [f"import numpy\nnumpy.__version__ = {version!r}", SETUP,
                 "@memo\ndef apply(fn, x):\n    ran('a')\n    return float(fn(x, x))",
                 "OUT['v'] = apply(numpy.add, 2.0)\nOUT['runs'] = RUNS.get('a', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel("1.0", 1)["runs"] == 1
    assert kernel("1.0", 2)["runs"] == 0
    assert kernel("2.0", 3)["runs"] == 1


def test_a_library_module_the_code_imports_itself_keys_alike_before_and_after_its_first_import(
        cache_dir: Path) -> None:
    cells = [SETUP, "import sys\nOUT['loaded before'] = [name in sys.modules for name in ('colorsys', 'wave')]",
             "%load_ext notebook_memo",
             "@memo\ndef hue(r):\n    import colorsys\n    ran('hue')\n    return colorsys.rgb_to_hsv(r, 0, 0)[0]",
             "hue(1.0)\nhue(1.0)",
             "%%memo cell\nimport wave\nran('cell')\nsize = wave.WAVE_FORMAT_PCM",
             "%%memo cell\nimport wave\nran('cell')\nsize = wave.WAVE_FORMAT_PCM",
             "OUT['runs'] = dict(RUNS)"]
    out = run_kernel(cells, cache_dir, seed=1)
    assert out["loaded before"] == [False, False] and out["runs"] == {"hue": 1, "cell": 1}


SCRIPT_WITH_GLOBALS = """
import math, multiprocessing
from notebook_memo import memo
FACTOR = 3
ROUND = math.floor

@memo(cache_dir={cache!r})
def scaled(x):
    return ROUND(math.sqrt(x) * FACTOR)

def work(x):
    return scaled(x), scaled.last_hit

if __name__ == "__main__":
    first = scaled(2)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        (value, hit), = pool.map(work, [2])
    print(value == first, hit)
"""


def test_a_script_s_globals_key_alike_in_its_spawned_workers(tmp_path: Path) -> None:
    """A spawned worker runs the script's code as __mp_main__: its globals, data and library objects alike, are
    the script's, under the same labels."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_WITH_GLOBALS.format(cache=str(tmp_path / "cache")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_a_dataclass_a_memoized_function_reads_is_keyed_without_a_warning(cache_dir: object) -> None:
    """A dataclass's __repr__ is wrapped by reprlib's guard, whose set of calls running is working state, not a
    setting: it is left out silently, not with a warning on every restart."""
    import dataclasses

    from notebook_memo import memo

    @dataclasses.dataclass
    class Settings:
        rate: float = 0.5

    @memo
    def scaled(x: float) -> float:
        return x * Settings().rate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert scaled(4.0) == 2.0
    assert [str(w.message) for w in caught if "cannot be hashed" in str(w.message)] == []
