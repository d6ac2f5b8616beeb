"""Code fingerprints: edits that cannot change the answer keep hits; edits that can, miss."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from notebook_memo._fingerprint import own_fingerprint
from tests.conftest import Shell


def fingerprint_of(shell: Shell, source: str, name: str = "f") -> bytes:
    shell.run(source)
    return own_fingerprint(shell[name])[0]


BASE = """
def f(x, scale=2):
    \"\"\"Doc.\"\"\"
    y = x * scale
    return y + 1
"""


@pytest.mark.parametrize(
    "variant",
    [
        "\n\n\n" + BASE,  # moved down the cell
        BASE.replace("    y = x * scale", "    # a comment\n    y = x * scale  # trailing"),
        BASE.replace('"""Doc."""', '"""A different docstring."""'),
        BASE.replace("x * scale", "x*scale"),
        BASE.replace("    return y + 1", "\n\n    return (y +\n            1)"),
        "import functools\n@functools.lru_cache(maxsize=3)\n" + BASE.lstrip().replace("def f", "def f", 1),
    ],
    ids=["moved", "comments", "docstring", "spacing", "wrapping", "decorator"],
)
def test_edits_that_cannot_change_the_answer_keep_the_fingerprint(shell: Shell, variant: str) -> None:
    base = fingerprint_of(shell, BASE)
    shell.run(variant)
    fn = shell["f"]
    fn = getattr(fn, "__wrapped__", fn)
    assert own_fingerprint(fn)[0] == base


@pytest.mark.parametrize(
    "variant",
    [
        BASE.replace("y + 1", "y + 2"),
        BASE.replace("scale=2", "scale=3"),
        BASE.replace("def f(x, scale=2)", "def f(x, scale=2, *, z=0)"),
        BASE.replace("x * scale", "scale * x * 1.0"),
    ],
    ids=["body", "default", "signature", "expression"],
)
def test_edits_that_can_change_the_answer_change_the_fingerprint(shell: Shell, variant: str) -> None:
    assert fingerprint_of(shell, BASE) != fingerprint_of(shell, variant)


def test_functions_without_source_use_their_code_object(shell: Shell) -> None:
    namespace: dict[str, object] = {}
    exec(compile("def f(x):\n    return x + 1\n", "<no source>", "exec"), namespace)
    digest, method = own_fingerprint(namespace["f"])  # type: ignore[arg-type]
    assert method == "bytecode"
    other: dict[str, object] = {}
    exec(compile("def f(x):\n    return x + 2\n", "<no source>", "exec"), other)
    assert own_fingerprint(other["f"])[0] != digest  # type: ignore[arg-type]


def test_lambdas_are_fingerprinted_by_code() -> None:
    a, b, c = (lambda x: x + 1), (lambda x: x + 1), (lambda x: x - 1)
    assert own_fingerprint(a)[0] == own_fingerprint(b)[0] != own_fingerprint(c)[0]


def test_source_edited_on_disk_but_not_reloaded_fingerprints_the_running_code(tmp_path: Path) -> None:
    module = tmp_path / "edited_module_xyz.py"
    module.write_text("def f(x):\n    return x + 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("edited_module_xyz")
        before, method = own_fingerprint(mod.f)
        assert method == "source"
        module.write_text(textwrap.dedent("def f(x):\n    return x + 100\n"))
        importlib.invalidate_caches()
        import linecache

        linecache.checkcache(str(module))
        fresh = mod.f.__code__.replace()  # same running code, new function object
        running = type(mod.f)(fresh, mod.__dict__, "f")
        digest, method = own_fingerprint(running)
        assert method == "bytecode"  # the file on disk is not what runs: never trust it
        assert digest != before
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("edited_module_xyz", None)
