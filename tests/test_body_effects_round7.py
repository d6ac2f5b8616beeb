"""Effects of a memoized body a hit could not make again, beyond the globals and class or module attributes
test_attribute_writes.py covers: an attribute set on an object a global holds (a config namespace, a dataclass
instance, the class reached through it). Real kernels (other hash seeds, one cache folder) and a real shell."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel, separate_cases

INSTANCES = """\
from notebook_memo import memo
import argparse, dataclasses, types
args = argparse.Namespace(lr=0.5, epochs=3)
@dataclasses.dataclass
class Cfg:
    lr: float = 0.5
cfg = Cfg()
class Opts:
    verbose = False
opts = Opts()
class Slotted:
    __slots__ = ("lr",)
    def __init__(self):
        self.lr = 0.5
slotted = Slotted()
class Model:
    def __init__(self):
        self.cfg = Cfg()
model = Model()
ns = types.SimpleNamespace(lr=0.5)
def tune(c):
    c.lr = 0.1
"""


def _said(shell: Shell, source: str) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = shell.run(source)
    return value, [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


# case -> (the body, what reads the attribute after the call, what a run leaves there)
OBJECT_ATTRIBUTES = {
    "namespace": ("args.lr = 0.1", "args.lr", 0.1),
    "dataclass": ("cfg.lr = 0.1", "cfg.lr", 0.1),
    "helper": ("tune(cfg)", "cfg.lr", 0.1),
    "class-through-type": ("type(opts).verbose = True", "Opts.verbose", True),
    "class-through-__class__": ("opts.__class__.verbose = True", "Opts.verbose", True),
    "slots": ("slotted.lr = 0.1", "slotted.lr", 0.1),
    "chain": ("model.cfg.lr = 0.1", "model.cfg.lr", 0.1),
    "setattr": ("setattr(ns, 'lr', 0.1)", "ns.lr", 0.1),
    "deleted": ("del ns.lr", "getattr(ns, 'lr', 'gone')", "gone"),
}


def _restarted(cases: dict[str, list[str]], cache_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the cases in a kernel, then in a restarted one, each case apart from the others."""
    return run_kernel(separate_cases(cases), cache_dir, seed=1), run_kernel(separate_cases(cases), cache_dir, seed=2)


def test_a_restarted_kernel_is_left_as_a_run_leaves_an_attribute_of_an_object_a_global_holds(
        cache_dir: Path) -> None:
    # Before, the first kernel's run was stored, and the second's call was a hit that left the attribute as the
    # object had it (0.5, False), silently, where a run sets it. Each case has its own objects and function.
    first, second = _restarted({case: [INSTANCES, f"@memo\ndef train_{i}(x):\n    {body}\n    return x * 2",
                                       f"OUT['result'] = train_{i}(3)\nOUT['after'] = {read}"]
                                for i, (case, (body, read, _)) in enumerate(OBJECT_ATTRIBUTES.items())}, cache_dir)
    for case, (_, _, expected) in OBJECT_ATTRIBUTES.items():
        assert (first[case]["result"], first[case]["after"]) == (6, expected), case
        assert (second[case]["result"], second[case]["after"]) == (6, expected), case
        said = [text for text in first[case]["_warnings"] if text.startswith("MemoWarning")]
        assert len(said) == 1 and "sets the attribute" in said[0], (case, said)


def test_an_object_attribute_filled_on_first_use_or_set_on_a_local_is_still_cached(shell: Shell) -> None:
    shell.run(INSTANCES + "class Holder:\n    def __init__(self):\n        self.model = None\nholder = Holder()\n"
              "@memo\ndef use(x):\n    if holder.model is None:\n        holder.model = [10]\n"
              "    fresh = Cfg()\n    fresh.lr = cfg.lr * 2\n    return x + holder.model[0] + fresh.lr")
    values = []
    for _ in range(3):
        value, said = _said(shell, "use(1)")
        values.append(value)
        assert said == []
    assert values == [12.0, 12.0, 12.0]
    assert shell.run("use.cache_info().hits") >= 1


def test_an_object_attribute_the_run_leaves_as_it_found_it_is_cached(shell: Shell) -> None:
    # The second run finds 0.1 and binds it again: no change, stored; the object is keyed, so 0.5 again misses.
    shell.run(INSTANCES + "@memo\ndef train(x):\n    cfg.lr = 0.1\n    return x * 2")
    _, said = _said(shell, "train(3)")
    assert len(said) == 1 and "'cfg.lr'" in said[0], said
    _, said = _said(shell, "train(3); train(3)")
    assert said == []
    assert shell.run("train.cache_info().hits") == 1
    shell.run("cfg.lr = 0.5")
    _, said = _said(shell, "train(3)")
    assert shell.run("cfg.lr") == 0.1


def test_an_object_passed_as_an_argument_is_warned_about_once(shell: Shell) -> None:
    shell.run(INSTANCES + "@memo\ndef train(c, x):\n    c.lr = 0.1\n    return x * cfg.lr")
    _, said = _said(shell, "train(cfg, 3)")
    assert len(said) == 1 and "'c'" in said[0], said


NAMESPACES = """\
from notebook_memo import memo
import %(module)s as settings
from %(module)s import Config
CODE = "Config.threshold = 0.7"
"""

# case -> (the body, what reads the namespace after the call, what a run leaves there)
NAMESPACE_WRITES = {
    "module-__dict__-item": ("settings.__dict__['MODE'] = 'fast'", "settings.MODE", "fast"),
    "module-__dict__-update": ("settings.__dict__.update(MODE='fast')", "settings.MODE", "fast"),
    "module-__dict__-del": ("del settings.__dict__['MODE']", "getattr(settings, 'MODE', 'gone')", "gone"),
    "vars-held-in-a-local": ("space = vars(settings)\n    space['MODE'] = 'fast'", "settings.MODE", "fast"),
    "instance-__dict__": ("settings.CONFIG.__dict__['lr'] = 0.1", "settings.CONFIG.lr", 0.1),
    "exec-constant": ("exec('Config.threshold = 0.7')", "Config.threshold", 0.7),
    "eval-constant": ("eval('setattr(Config, \"threshold\", 0.7)')", "Config.threshold", 0.7),
    "exec-computed": ("exec(CODE)", "Config.threshold", 0.7),
}


def test_a_restarted_kernel_is_left_as_a_run_leaves_a_namespace_it_writes_directly_or_through_exec(
        cache_dir: Path) -> None:
    # Before, these runs were stored (with a warning that a namespace or exec() is left out of the key, at most), and
    # a restarted kernel's hit left the module, class or object as it was ('slow', 0.5). Each case has a module of
    # its own, which no other case changes.
    cases = {}
    for i, (case, (body, read, _)) in enumerate(NAMESPACE_WRITES.items()):
        module = f"nbm_round7_settings_{i}"
        (cache_dir.parent / f"{module}.py").write_text(
            "import types\nMODE = 'slow'\nCONFIG = types.SimpleNamespace(lr=0.5)\nclass Config:\n    threshold = 0.5\n")
        cases[case] = [NAMESPACES % {"module": module}, f"@memo\ndef calibrate_{i}(x):\n    {body}\n    return x * 2",
                       f"OUT['result'] = calibrate_{i}(3)\nOUT['after'] = {read}"]
    first, second = _restarted(cases, cache_dir)
    for case, (_, _, expected) in NAMESPACE_WRITES.items():
        assert (first[case]["result"], first[case]["after"]) == (6, expected), case
        assert (second[case]["result"], second[case]["after"]) == (6, expected), case
        said = [text for text in first[case]["_warnings"] if text.startswith("MemoWarning") and "not cached" in text]
        assert len(said) == 1, (case, first[case]["_warnings"])


def test_exec_of_a_text_made_at_run_time_is_said_and_not_stored(shell: Shell) -> None:
    shell.run("from notebook_memo import memo\nclass Config:\n    threshold = 0.5\n"
              "@memo\ndef calibrate(x, name):\n    exec(f'{name}.threshold = 0.5')\n    return x * 2")
    _, said = _said(shell, "calibrate(3, 'Config')")
    assert any("exec()" in text and "cannot be known" in text for text in said), said
    _, said = _said(shell, "calibrate(3, 'Config')")
    assert shell.run("calibrate.cache_info().hits") == 0


def test_reading_a_namespace_or_exec_binding_locals_alone_is_still_cached(shell: Shell) -> None:
    shell.run("from notebook_memo import memo\nclass Config:\n    threshold = 0.5\n"
              "@memo\ndef calibrate(x):\n    exec('y = 2')\n"
              "    return x * len(vars(Config)) * Config.__dict__['threshold']")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = shell.run("calibrate(3)")
        assert shell.run("calibrate(3)") == first
    assert shell.run("calibrate.cache_info().hits") == 1


@pytest.mark.parametrize(("body", "label"), [
    ("vars(settings)['MODE'] = 'fast'", "settings.MODE"),
    ("type.__setattr__(Config, 'threshold', 0.7)", "Config.threshold"),
    ("object.__setattr__(settings, 'MODE', 'fast')", "settings.MODE"),
    ("for k, v in dict(threshold=0.7).items():\n        setattr(Config, k, v)", "Config.threshold"),
    ("delattr(settings, ''.join(['MO', 'DE']))", "settings.MODE"),
], ids=["vars", "type.__setattr__", "object.__setattr__", "setattr-loop", "delattr-computed"])
def test_a_body_that_sets_an_attribute_itself_is_told_so_not_that_another_thread_did(
        shell: Shell, body: str, label: str) -> None:
    # Before, these were refused as "bound anew while it ran (by another thread or task)".
    shell.run("from notebook_memo import memo\nimport types\nsettings = types.ModuleType('settings')\n"
              "settings.MODE = 'slow'\nclass Config:\n    threshold = 0.5\n"
              f"@memo\ndef calibrate(x):\n    {body}\n    return x * 2")
    _, said = _said(shell, "calibrate(3)")
    assert len(said) == 1 and f"sets the attribute {label!r} anew" in said[0], said
    assert "another thread" not in said[0]


PROCESS = """\
from notebook_memo import memo
import itertools, sys
import pandas as pd
import torch
torch.use_deterministic_algorithms(False)  # its first call imports modules: a change then is not said, only refused
class Node:
    _ids = itertools.count()
    def __init__(self):
        self.id = next(Node._ids)
"""


# case -> (the body, what reads the state after the call, what a run leaves there); no two cases change one state.
PROCESS_STATE = {
    "cudnn-deterministic": ("torch.backends.cudnn.deterministic = True", "torch.backends.cudnn.deterministic", True),
    "cudnn-benchmark": ("torch.backends.cudnn.benchmark = True", "torch.backends.cudnn.benchmark", True),
    "deterministic-algorithms": ("torch.use_deterministic_algorithms(True)",
                                 "torch.are_deterministic_algorithms_enabled()", True),
    "pandas-display-option": ("pd.set_option('display.max_rows', 7)", "pd.get_option('display.max_rows')", 7),
    "class-counter": ("[Node() for _ in range(3)]", "next(Node._ids)", 3),
}


def test_a_restarted_kernel_is_left_as_a_run_leaves_process_state(cache_dir: Path) -> None:
    # Before, these runs were stored silently, and a restarted kernel's hit left the limit at 1000, the flags off,
    # the option at 60 and the counter at 0.
    first, second = _restarted({case: [PROCESS, f"@memo\ndef step_{i}(x):\n    {body}\n    return x * 2",
                                       f"OUT['result'] = step_{i}(3)\nOUT['after'] = {read}"]
                                for i, (case, (body, read, _)) in enumerate(PROCESS_STATE.items())}, cache_dir)
    for case, (_, _, expected) in PROCESS_STATE.items():
        assert (first[case]["result"], first[case]["after"]) == (6, expected), case
        assert (second[case]["result"], second[case]["after"]) == (6, expected), case
        said = [text for text in first[case]["_warnings"] if text.startswith("MemoWarning") and "not cached" in text]
        assert len(said) == 1, (case, first[case]["_warnings"])


def test_a_recursive_function_and_a_limit_set_back_are_still_cached(shell: Shell) -> None:
    # The limit raised for the wrapper's own frames, and one the body sets and restores, are no change.
    shell.run("from notebook_memo import memo\nimport sys\n"
              "@memo\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
              "@memo\ndef deep(x):\n    old = sys.getrecursionlimit()\n    sys.setrecursionlimit(old + 100)\n"
              "    try:\n        return x * 2\n    finally:\n        sys.setrecursionlimit(old)")
    value, said = _said(shell, "fib(30), deep(3), deep(3)")
    assert value == (832040, 6, 6) and said == []
    assert shell.run("fib(30)") == 832040
    assert shell.run("fib.cache_info().hits") >= 1 and shell.run("deep.cache_info().hits") == 1
