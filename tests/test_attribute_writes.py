"""Attributes of classes and modules a memoized body sets: a hit in a restarted kernel leaves them as they were,
so a run that leaves one bound to another object (``Config.threshold = 0.7``, ``settings.MODE = "fast"``,
``setattr``, ``del``, through a helper, on an argument's class) is returned and not stored, as a body that binds a
global anew is; an attribute found unset and filled on first use (a singleton) is still no change. Real kernels
(other hash seeds, one cache folder) and a real shell."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel

CONFIG = "from notebook_memo import memo\nclass Config:\n    threshold = 0.5\n"


def _calls(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize(("define", "body", "read", "expected"), [
    (CONFIG, "Config.threshold = 0.7", "Config.threshold", 0.7),
    (CONFIG, "setattr(Config, 'threshold', 0.7)", "Config.threshold", 0.7),
    (CONFIG, "del Config.threshold", "getattr(Config, 'threshold', 'gone')", "gone"),
    (CONFIG + "def tune():\n    Config.threshold = 0.7\n", "tune()", "Config.threshold", 0.7),
    ("from notebook_memo import memo\nimport nbm_attr_settings as settings\n", "settings.MODE = 'fast'",
     "settings.MODE", "fast"),
    ("from notebook_memo import memo\n", "import nbm_attr_settings\n    nbm_attr_settings.MODE = 'fast'",
     "__import__('nbm_attr_settings').MODE", "fast"),
    ("from notebook_memo import memo\nimport nbm_attr_settings as settings\n", "settings.tune()",
     "settings.Config.threshold", 0.7),
], ids=["assigned", "setattr", "deleted", "helper", "module", "module-imported-in-body", "module-helper"])
def test_a_restarted_kernel_is_left_as_a_run_leaves_a_class_or_module_attribute(
        cache_dir: Path, define: str, body: str, read: str, expected: object) -> None:
    # Before, the first kernel's run was stored, and the second's call was a hit that left the attribute as the
    # class or module defines it (0.5, 'slow'), silently, where a run sets it.
    (cache_dir.parent / "nbm_attr_settings.py").write_text(
        "MODE = 'slow'\nclass Config:\n    threshold = 0.5\ndef tune():\n    Config.threshold = 0.7\n")
    cells = [define, f"@memo\ndef calibrate(x):\n    {body}\n    return x * 2",
             f"OUT['result'] = calibrate(3)\nOUT['after'] = {read}"]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert (first["result"], first["after"]) == (6, expected)
    assert (second["result"], second["after"]) == (6, expected)
    said = [text for text in first["_warnings"] if text.startswith("MemoWarning")]
    assert len(said) == 1 and "anew" in said[0] and "attribute" in said[0], said
    assert "Return the value instead" in said[0]


def test_the_warning_names_the_attribute_and_explain_says_why(shell: Shell) -> None:
    shell.run(CONFIG + "@memo\ndef calibrate(x):\n    Config.threshold = 0.7\n    return x * 2")
    said = _calls(shell, "calibrate(3)")
    assert len(said) == 1 and "'Config.threshold'" in said[0], said
    assert "Config.threshold" in str(shell.run("calibrate.explain_last()"))


def test_a_later_run_that_finds_the_attribute_set_is_served_only_where_it_is_so(shell: Shell) -> None:
    # The second run finds 0.7 and changes nothing: stored, under the key of 0.7 (the attribute is keyed); a kernel
    # that has 0.5 again (as a restarted one) must not be served it.
    shell.run(CONFIG + "@memo\ndef calibrate(x):\n    Config.threshold = 0.7\n    return x * 2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run("calibrate(3); calibrate(3)")
        shell.run("Config.threshold = 0.5")
        assert shell.run("calibrate(3)") == 6
    assert shell.run("Config.threshold") == 0.7


@pytest.mark.parametrize("body", ["type(self).counter += 1", "self.__class__.counter = self.__class__.counter + 1",
                                  "bump(type(self))"])
def test_a_method_that_sets_an_attribute_of_its_class_is_not_stored(shell: Shell, body: str) -> None:
    shell.run("from notebook_memo import memo\ndef bump(cls):\n    cls.counter += 1\n"
              "class Counted:\n    counter = 0\n    def __memo_key__(self):\n        return 'counted'\n"
              f"    @memo\n    def run(self, x):\n        {body}\n        return x")
    # Already not stored before: the method's 'self' hashes with its class, which changed (the warning says so).
    said = _calls(shell, "Counted().run(1)")
    assert len(said) == 1 and "'self'" in said[0], said
    shell.run("Counted.counter = 0")  # as in a restarted kernel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run("Counted().run(1)")
    assert shell["Counted"].counter == 1


@pytest.mark.parametrize(("call", "warned"), [
    ("mark(Flags, 1)", "'owner'"),  # a class argument hashes with its attributes: the argument changed
    ("mark(Flags(), 1)", "'owner'"),  # so does an instance's class, even keyed by __memo_key__
    ("mark(Hashed(), 1)", "'owner'"),  # and one a registered hasher keys
], ids=["class", "instance-keyed-by-name", "instance-registered-hasher"])
def test_a_class_an_argument_brings_whose_attribute_the_body_sets_is_not_stored(shell: Shell, call: str,
                                                                                warned: str) -> None:
    # Already not stored before this file: an argument's key holds its class's attributes, and the warning names it.
    shell.run("from notebook_memo import memo, register_hasher\n"
              "class Flags:\n    seen = False\n    def __memo_key__(self):\n        return 'flags'\n"
              "class Hashed:\n    seen = False\nregister_hasher(Hashed, lambda h: 'hashed')\n"
              "@memo\ndef mark(owner, x):\n    (owner if isinstance(owner, type) else type(owner)).seen = True\n"
              "    return x")
    said = _calls(shell, call)
    assert len(said) == 1 and warned in said[0], said
    shell.run("Flags.seen = Hashed.seen = False")  # as in a restarted kernel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run(call)
    assert shell["Flags"].seen or shell["Hashed"].seen


@pytest.mark.parametrize("fill", [
    "if Model._instance is None:\n        Model._instance = [10]",
    "if not hasattr(Model, 'cache'):\n        Model.cache = [10]",
    "load()",
], ids=["found-none", "found-absent", "helper"])
def test_an_attribute_filled_on_first_use_is_still_cached_without_a_warning(shell: Shell, fill: str) -> None:
    shell.run("from notebook_memo import memo\nclass Model:\n    _instance = None\n"
              "def load():\n    if Model._instance is None:\n        Model._instance = [10]\n"
              "    return Model._instance\n"
              f"@memo\ndef use(x):\n    {fill}\n    return x + 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [shell.run("use(1)") for _ in range(3)] == [2, 2, 2]
    assert [str(w.message) for w in caught if issubclass(w.category, MemoWarning)] == []
    assert shell.run("use.cache_info().hits") >= 1


def test_a_batch_chunk_that_sets_a_class_attribute_is_not_stored(shell: Shell) -> None:
    shell.run(CONFIG + "@memo.batch('xs', progress=False)\ndef scaled(xs):\n    Config.threshold = 0.7\n"
              "    return [x * 2 for x in xs]")
    said = _calls(shell, "first = scaled([1, 2])")
    assert said and "'Config.threshold'" in said[0], said
    shell.run("Config.threshold = 0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert shell.run("scaled([1, 2])") == [2, 4]
    assert shell.run("Config.threshold") == 0.7


def test_a_coroutine_that_sets_a_class_attribute_is_not_stored(shell: Shell) -> None:
    shell.run(CONFIG + "import asyncio\n@memo\nasync def calibrate(x):\n    Config.threshold = 0.7\n    return x * 2")
    said = _calls(shell, "asyncio.run(calibrate(3))")
    assert len(said) == 1 and "'Config.threshold'" in said[0], said
    shell.run("Config.threshold = 0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert shell.run("asyncio.run(calibrate(3))") == 6
    assert shell.run("Config.threshold") == 0.7
