"""Code reached through data, round 10: the user's code patched into the library classes of values that a fast
path hashes (a DataFrame, a Series, an Index, a tensor), the user's code held by a library object patched into a
library class (``functools.partialmethod(mine)``, pandas' accessors of the user's class), and the user's code put in
a library module, or attached to a library function, passed as an argument. Editing that code is a miss; an
unrelated edit, or running the same patch cell again, stays a hit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Shell

SETUP = """
import functools
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
"""

USE = "@memo\ndef use(obj, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return {returns}"

# The names this module patches into library classes: taken away again after each test (the classes are the
# process's, shared by every test that runs after).
PATCHED = "nb_round10"


@pytest.fixture
def nb(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    import fractions

    import pandas as pd
    import torch

    monkeypatch.setattr(pd.DataFrame, "_accessors", set(pd.DataFrame._accessors))
    shell.run(SETUP)
    yield shell
    for cls in (pd.DataFrame, pd.Series, pd.Index, pd.core.generic.NDFrame, torch.Tensor, fractions.Fraction):
        if PATCHED in vars(cls):
            delattr(cls, PATCHED)


def runs(shell: Shell) -> int:
    return int(shell["RUNS"].get("n", 0))


def patch(owner: str, offset: int) -> str:
    """A cell that defines a method adding ``offset`` and patches it into ``owner``."""
    return f"def added(self, x):\n    return x + {offset}\n{owner}.{PATCHED} = added"


def call_edit_call(nb: Shell, call: str, edit: str) -> None:
    """Call twice (a hit), run ``edit``, call again: the last call must run and answer anew."""
    nb.run(f"first = {call}\nagain = {call}")
    assert runs(nb) == 1
    nb.run(edit)
    nb.run(f"edited = {call}")
    assert runs(nb) == 2, "an edit of the code patched into the argument's class served the old answer"
    assert nb["edited"] != nb["first"]


# -- 1. a function patched into the library class of a value a fast path hashes --------------------------------


@pytest.mark.parametrize(("owner", "value"), [
    ("pd.DataFrame", "pd.DataFrame({'a': [1]})"),
    ("pd.Series", "pd.Series([1])"),
    ("pd.core.generic.NDFrame", "pd.Series([1])"),  # a base of the class
    ("pd.Index", "pd.Index([1, 2])"),
    ("torch.Tensor", "torch.zeros(1)"),
], ids=["dataframe", "series", "series-base", "index", "tensor"])
def test_editing_a_method_patched_into_a_fast_path_class_is_a_miss(nb: Shell, owner: str, value: str) -> None:
    nb.run(f"import pandas as pd\nimport torch\nobj = {value}")
    nb.run(patch(owner, 1))
    nb.run(USE.format(returns=f"obj.{PATCHED}(x)"))
    call_edit_call(nb, "use(obj, 1)", patch(owner, 2))


def test_a_method_patched_into_the_index_of_a_dataframe_is_keyed(nb: Shell) -> None:
    nb.run("import pandas as pd\nobj = pd.DataFrame({'a': [1]}, index=pd.Index([7]))")
    nb.run(patch("pd.Index", 1))
    nb.run(USE.format(returns=f"obj.index.{PATCHED}(x)"))
    call_edit_call(nb, "use(obj, 1)", patch("pd.Index", 2))


def test_tensors_in_a_list_are_keyed_with_what_is_patched_into_their_class(nb: Shell) -> None:
    nb.run("import torch\nobj = [torch.zeros(1), torch.ones(1)]")
    nb.run(patch("torch.Tensor", 1))
    nb.run(USE.format(returns=f"[t.{PATCHED}(x) for t in obj]"))
    call_edit_call(nb, "use(obj, 1)", patch("torch.Tensor", 2))


def test_running_the_same_patch_again_or_an_unrelated_cell_keeps_the_hit(nb: Shell) -> None:
    nb.run("import pandas as pd\nimport torch\nframe = pd.DataFrame({'a': [1]})\ntensor = torch.zeros(1)")
    nb.run(patch("pd.DataFrame", 1))
    nb.run(USE.format(returns=f"(obj[0].{PATCHED}(x), float(obj[1].sum()))"))
    nb.run("first = use((frame, tensor), 1)")
    nb.run(patch("pd.DataFrame", 1))
    nb.run("def unrelated(v):\n    return v * 3")
    nb.run("again = use((frame, tensor), 1)")
    assert runs(nb) == 1 and nb["again"] == nb["first"]


def test_unpatched_fast_path_values_keep_their_hit_beside_a_patched_class(nb: Shell) -> None:
    nb.run("import pandas as pd\nimport torch\nframe = pd.DataFrame({'a': [1]})\ntensor = torch.zeros(1)")
    nb.run(USE.format(returns="(int(obj[0]['a'].sum()), float(obj[1].sum()))"))
    nb.run("first = use((frame, tensor), 1)")
    nb.run(patch("fractions.Fraction", 1).replace("def added", "import fractions\ndef added"))
    nb.run("again = use((frame, tensor), 1)")
    assert runs(nb) == 1


# -- 2. the user's code held by a library object patched into a library class ----------------------------------


ACCESSOR = """
@pd.api.extensions.register_dataframe_accessor({name!r})
class Shifted:
    def __init__(self, frame):
        self.frame = frame
    def by(self, x):
        return x + {offset}
"""


def test_editing_a_pandas_accessor_class_is_a_miss(nb: Shell) -> None:
    nb.run("import pandas as pd\nimport warnings\nwarnings.simplefilter('ignore', UserWarning)")
    nb.run(ACCESSOR.format(name=PATCHED, offset=1) + "obj = pd.DataFrame({'a': [1]})")
    nb.run(USE.format(returns=f"obj.{PATCHED}.by(x)"))
    call_edit_call(nb, "use(obj, 1)", ACCESSOR.format(name=PATCHED, offset=2) + "obj = pd.DataFrame({'a': [1]})")


def test_running_a_pandas_accessor_cell_again_unchanged_keeps_the_hit(nb: Shell) -> None:
    nb.run("import pandas as pd\nimport warnings\nwarnings.simplefilter('ignore', UserWarning)")
    nb.run(ACCESSOR.format(name=PATCHED, offset=1) + "obj = pd.DataFrame({'a': [1]})")
    nb.run(USE.format(returns=f"obj.{PATCHED}.by(x)"))
    nb.run("first = use(obj, 1)")
    nb.run(ACCESSOR.format(name=PATCHED, offset=1) + "obj = pd.DataFrame({'a': [1]})")
    nb.run("again = use(obj, 1)")
    assert runs(nb) == 1 and nb["again"] == nb["first"] == 2


PARTIAL = """
def scaled(self, factor, x):
    return x * factor + {offset}
fractions.Fraction.{name} = functools.partialmethod(scaled, 10)
"""


def test_editing_a_partialmethod_patched_into_a_library_class_is_a_miss(nb: Shell) -> None:
    nb.run("import fractions\nobj = fractions.Fraction(1, 2)")
    nb.run(PARTIAL.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns=f"obj.{PATCHED}(x)"))
    call_edit_call(nb, "use(obj, 1)", PARTIAL.format(name=PATCHED, offset=2))


def test_a_library_wrapper_around_the_users_function_patched_into_a_library_class_is_keyed(nb: Shell) -> None:
    nb.run("import fractions\nobj = fractions.Fraction(1, 2)")
    cell = "def bumped(self, x):\n    return x + {offset}\nfractions.Fraction.{name} = functools.lru_cache(bumped)"
    nb.run(cell.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns=f"obj.{PATCHED}(x)"))
    call_edit_call(nb, "use(obj, 1)", cell.format(name=PATCHED, offset=2))


def test_editing_a_partialmethod_patched_into_a_library_class_the_body_names_is_a_miss(nb: Shell) -> None:
    nb.run("import fractions")
    nb.run(PARTIAL.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns=f"fractions.Fraction(1, 2).{PATCHED}(x) + obj"))
    call_edit_call(nb, "use(0, 1)", PARTIAL.format(name=PATCHED, offset=2))


def test_editing_a_pandas_accessor_class_the_body_names_is_a_miss(nb: Shell) -> None:
    nb.run("import pandas as pd\nimport warnings\nwarnings.simplefilter('ignore', UserWarning)")
    nb.run(ACCESSOR.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns=f"pd.DataFrame({{'a': [1]}}).{PATCHED}.by(x) + obj"))
    call_edit_call(nb, "use(0, 1)", ACCESSOR.format(name=PATCHED, offset=2))


# -- 3. the user's code put in a library module passed as an argument ------------------------------------------


@pytest.fixture
def colorsys_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import colorsys

    monkeypatch.setattr(colorsys, "rgb_to_hsv", colorsys.rgb_to_hsv)
    yield
    if PATCHED in vars(colorsys):
        delattr(colorsys, PATCHED)


MODULE_PATCH = "def added(x, *rest):\n    return x + {offset}\ncolorsys.{name} = added"


@pytest.mark.parametrize("name", [PATCHED, "rgb_to_hsv"], ids=["added", "replaced"])
def test_editing_a_function_put_in_a_library_module_argument_is_a_miss(
        nb: Shell, colorsys_restored: None, name: str) -> None:
    nb.run("import colorsys")
    nb.run(MODULE_PATCH.format(name=name, offset=1))
    nb.run(USE.format(returns=f"obj.{name}(x, 0, 0)"))
    call_edit_call(nb, "use(colorsys, 1)", MODULE_PATCH.format(name=name, offset=2))


def test_a_library_module_argument_keeps_its_hit_across_an_unrelated_cell_and_the_same_patch(
        nb: Shell, colorsys_restored: None) -> None:
    nb.run("import colorsys")
    nb.run(MODULE_PATCH.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns="obj.rgb_to_hsv(x, 0, 0)"))
    nb.run("first = use(colorsys, 1)")
    nb.run(MODULE_PATCH.format(name=PATCHED, offset=1))
    nb.run("def unrelated(v):\n    return v * 3")
    nb.run("again = use(colorsys, 1)")
    assert runs(nb) == 1 and nb["again"] == nb["first"]


# -- 4. the user's code attached to a library function passed as an argument -----------------------------------


@pytest.fixture
def hls_restored() -> Iterator[None]:
    import colorsys

    yield
    vars(colorsys.hls_to_rgb).pop(PATCHED, None)


ATTACHED = "def helper(x):\n    return x + {offset}\ncolorsys.hls_to_rgb.{name} = helper"


def test_editing_a_function_attached_to_a_library_function_argument_is_a_miss(nb: Shell, hls_restored: None) -> None:
    nb.run("import colorsys")
    nb.run(ATTACHED.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns=f"obj.{PATCHED}(x)"))
    call_edit_call(nb, "use(colorsys.hls_to_rgb, 1)", ATTACHED.format(name=PATCHED, offset=2))


def test_a_library_function_argument_keeps_its_hit_with_the_same_attachment(nb: Shell, hls_restored: None) -> None:
    nb.run("import colorsys")
    nb.run(ATTACHED.format(name=PATCHED, offset=1))
    nb.run(USE.format(returns=f"obj.{PATCHED}(x) + obj(0.0, 0.0, 0.0)[0]"))
    nb.run("first = use(colorsys.hls_to_rgb, 1)")
    nb.run(ATTACHED.format(name=PATCHED, offset=1))
    nb.run("again = use(colorsys.hls_to_rgb, 1)")
    assert runs(nb) == 1 and nb["again"] == nb["first"]
