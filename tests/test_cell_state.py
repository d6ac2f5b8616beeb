"""What a %%memo hit leaves behind matches what a run leaves: the state of modules, classes, shell
extensions and shared objects the cell changed or kept; where a hit could not restore it exactly, the
cell is not stored and says why. Also what a cell reads through a partial's attributes is in its key."""

from __future__ import annotations

from tests.conftest import Shell


def test_an_attribute_set_on_a_partial_the_cell_reads_is_in_its_key(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("import functools\ndef scale(x, k=1): return x * k\nstep = functools.partial(scale, k=2)\n"
              "step.label = 'v1'")
    cell = "%%memo\nname = step.label\n"
    shell.run(cell)
    shell.run("step.label = 'v2'")
    shell.run(cell)
    assert shell["name"] == "v2"


def test_an_attribute_set_on_a_partial_a_helper_reads_is_in_its_key(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("import functools\ndef scale(x, k=1): return x * k\nstep = functools.partial(scale, k=2)\n"
              "step.unit = 'm'\ndef describe(): return f'{step(2)} {step.unit}'")
    cell = "%%memo\ntext = describe()\n"
    shell.run(cell)
    shell.run("step.unit = 'cm'")
    shell.run(cell)
    assert shell["text"] == "4 cm"


def test_an_attribute_set_later_on_a_partial_a_memoized_function_reads_is_a_miss(shell: Shell) -> None:
    shell.run("import functools\nfrom notebook_memo import memo\ndef scale(x, k=1): return x * k\n"
              "step = functools.partial(scale, k=2)\n"
              "@memo\ndef describe(): return getattr(step, 'unit', 'none')\nfirst = describe()")
    shell.run("step.unit = 'cm'\nsecond = describe()")
    shell.run("step.unit = 'mm'\nthird = describe()")
    assert (shell["first"], shell["second"], shell["third"]) == ("none", "cm", "mm")
