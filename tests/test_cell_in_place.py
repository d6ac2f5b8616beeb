"""%%memo hits restore an input the cell changed in place into the object the notebook holds, so every
other reference to it (an optimizer's parameters, a view's base, a dict holding a list) sees the change,
as after a real run; where that cannot be done whole, names are bound to the restored copies as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notebook_memo import StorageWarning
from tests.conftest import Shell, run_kernel, separate_cases

SETUP = """
import torch
%load_ext notebook_memo
torch.manual_seed(0)  # the same model in every kernel, so the cached cell's inputs match
"""


WEIGHTS_REACH_THE_OPTIMIZER = [SETUP, """
model = torch.nn.Linear(1, 1, bias=False)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
holder = {"m": model}
""", """%%memo
with torch.no_grad():
    model.weight.fill_(1.0)
""", """
for _ in range(3):
    opt.zero_grad()
    model(torch.ones(1, 1)).sum().backward()
    opt.step()
OUT["weight"] = round(model.weight.item(), 6)
OUT["held"] = holder["m"] is model
"""]

A_VIEW_CHANGES_ITS_BASE = [SETUP, """
base = torch.zeros(4)
v = base[:2]
""", """%%memo
v += 1
""", """
OUT["base"] = base.tolist()
OUT["v"] = v.tolist()
"""]

# The optimizer's state gains new objects (momentum buffers): not restored in place, so the model and the
# optimizer are bound together to their restored copies, still linked, and training goes on from the same state
# as after the run.
A_TRAINING_CELL_STAYS_LINKED = [SETUP, """
model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(8, 3)
y = torch.randn(8, 1)
""", """%%memo
for _ in range(5):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
""", """
for _ in range(5):  # momentum carries on from the cached steps
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
OUT["weights"] = [p.detach().tolist() for p in model.parameters()]
OUT["opt_params"] = all(a is b for a, b in zip(opt.param_groups[0]["params"], model.parameters()))
OUT["running_mean"] = model[1].running_mean.tolist()
"""]

HOOKS_AND_ATTRIBUTES_KEPT = [SETUP, """
model = torch.nn.Linear(2, 2)
log = []
model.register_forward_hook(lambda m, i, o: log.append(1))
model.cfg = {"lr": 1}
cfg = model.cfg
""", """%%memo
with torch.no_grad():
    model.weight.mul_(2)
model.eval()
""", """
model(torch.ones(1, 2))
cfg["lr"] = 2
OUT["log"] = len(log)
OUT["cfg"] = model.cfg["lr"]
OUT["training"] = model.training
"""]

# `old_w` holds the parameter the cell replaces (not one it changes): the second kernel, which does not know that
# yet, runs the cell and stores that it does; the third hits and leaves `old_w` as the run does.
A_REPLACED_PARAMETER_IS_BOUND = [SETUP, """
model = torch.nn.Linear(2, 1, bias=False)
old_w = model.weight
holder = {"m": model}
""", """%%memo
model.weight = torch.nn.Parameter(torch.ones(1, 2))
holder["n"] = 1
""", """
OUT["replaced"] = model.weight is not old_w
OUT["old"] = old_w.detach().tolist() != [[1.0, 1.0]]
OUT["together"] = holder["m"] is model
"""]

A_BOUND_METHOD_KEPT_WITH_ITS_LIST = ["""
%load_ext notebook_memo
items = [1]
""", """%%memo
items.append(2)
add = items.append
""", """
add(3)
OUT["items"] = items
"""]

A_STRICT_GETATTR = ["""
%load_ext notebook_memo
class Bag:
    def __init__(self):
        self.d = {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__dict__["d"][name]

bag = Bag()
""", """%%memo
bag.d["x"] = 1
""", """
OUT["x"] = bag.x
"""]

A_LIST_AND_AN_ARRAY_STAY_HELD = ["""
import numpy as np
%load_ext notebook_memo
items = [1]
table = {"items": items}
a = np.zeros(3)
view = a[1:]
""", """%%memo
items.append(2)
a += 5
""", """
OUT["table"] = table["items"]
OUT["same"] = table["items"] is items
OUT["view"] = view.tolist()
"""]

A_NEW_NAME_SHARING_PART_OF_AN_INPUT = [SETUP, """
model = torch.nn.Sequential(torch.nn.Linear(2, 2))
""", """%%memo
model.append(torch.nn.ReLU())
head = model[1]
""", """
OUT["together"] = head is model[1]
OUT["types"] = [type(m).__name__ for m in model]
"""]


def test_nothing_is_copied_unless_every_changed_input_fits_its_live_object() -> None:
    import torch

    from notebook_memo._in_place import restore_in_place

    live = {"w": torch.zeros(3), "v": torch.zeros(2), "items": [1]}
    restored = {"w": torch.ones(3), "v": torch.ones(4), "items": [1, 2]}  # v changed shape: cannot be copied
    assert restore_in_place(live, restored, {}) is False
    assert live["w"].tolist() == [0.0] * 3 and live["items"] == [1]


def test_nothing_is_copied_when_a_new_output_shares_an_object_with_a_changed_input() -> None:
    import torch

    from notebook_memo._in_place import restore_in_place

    inner = torch.ones(2)
    live = {"box": {"t": torch.zeros(2)}}
    assert restore_in_place(live, {"box": {"t": inner}}, {"alias": inner}) is False
    assert live["box"]["t"].tolist() == [0.0, 0.0]
    assert restore_in_place(live, {"box": {"t": inner}}, {"other": torch.ones(2)}) is True
    assert live["box"]["t"] is inner


def test_a_value_too_large_to_walk_counts_as_shared() -> None:
    from notebook_memo._in_place import restore_in_place

    live = {"items": [0]}
    assert restore_in_place(live, {"items": [1]}, {"numbers": list(range(1_000_000))}) is False
    assert live["items"] == [0]


# -- names that hold what the cell changes ---------------------------------------------------------------

TRAINER = [SETUP, """
class Trainer:
    def __init__(self, model):
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def fit(self, steps):
        for _ in range(steps):
            self.opt.zero_grad()
            self.model(torch.ones(4, 2)).pow(2).mean().backward()
            self.opt.step()

model = torch.nn.Linear(2, 1)
trainer = Trainer(model)
"""]

AFTER_TRAINING = """
trainer.fit(2)  # training goes on from the cached steps, momentum included
OUT["w"] = model.weight.detach().tolist()
OUT["linked"] = trainer.model is model
OUT["params"] = all(a is b for a, b in zip(trainer.opt.param_groups[0]["params"], model.parameters()))
"""


# Both are inputs: bound together to their restored copies, which share as the run left them.
A_MODEL_READ_BESIDE_ITS_TRAINER = [*TRAINER, "%%memo\ntrainer.fit(3)\nmodel", AFTER_TRAINING]

# The cell reads only `trainer`: a hit binding `trainer` alone to its restored copy left the notebook's `model`
# untrained and no longer the trainer's. Such a cell is not cached, and says so.
A_MODEL_HELD_BY_THE_TRAINER_TRAINED = [*TRAINER, "%%memo\ntrainer.fit(3)", AFTER_TRAINING]

AN_OPTIMIZER_STEPPED_ALONE = [SETUP, """
model = torch.nn.Linear(2, 1, bias=False)
opt = torch.optim.SGD(model.parameters(), lr=0.5)
model(torch.ones(1, 2)).sum().backward()
""", "%%memo\nopt.step()", """
OUT["w"] = model.weight.detach().tolist()
OUT["same"] = opt.param_groups[0]["params"][0] is model.weight
"""]

# Cases run in a kernel, then in a restarted one: each id names what it checks.
RESTARTED = {
    "weights set in place by a cached cell reach the optimizer": WEIGHTS_REACH_THE_OPTIMIZER,
    "a view changed by a cached cell changes its base": A_VIEW_CHANGES_ITS_BASE,
    "a training cell that steps an optimizer is restored whole and stays linked": A_TRAINING_CELL_STAYS_LINKED,
    "weights changed in place keep the model's hooks and attributes": HOOKS_AND_ATTRIBUTES_KEPT,
    "a replaced parameter or a changed container of objects is bound, not copied": A_REPLACED_PARAMETER_IS_BOUND,
    "a bound method of a changed list keeps them together": A_BOUND_METHOD_KEPT_WITH_ITS_LIST,
    "a hit never raises for an object with a strict __getattr__": A_STRICT_GETATTR,
    "a list and an array changed in place stay the objects others hold": A_LIST_AND_AN_ARRAY_STAY_HELD,
    "a new name sharing part of a changed input keeps them together": A_NEW_NAME_SHARING_PART_OF_AN_INPUT,
    "a model the cell reads beside the trainer it trains is restored with it": A_MODEL_READ_BESIDE_ITS_TRAINER,
    "a model held by a trainer the cell trains is never left untrained": A_MODEL_HELD_BY_THE_TRAINER_TRAINED,
    "an optimizer stepped alone is not cached when the notebook holds its model": AN_OPTIMIZER_STEPPED_ALONE,
}
REPLACED = "a replaced parameter or a changed container of objects is bound, not copied"
NOT_CACHED = ("a model held by a trainer the cell trains is never left untrained",
              "an optimizer stepped alone is not cached when the notebook holds its model")


def test_inputs_a_cached_cell_changed_in_place_after_a_restart(cache_dir: Path) -> None:
    """Every case shares one pair of kernels, each case apart; the case that needs a third kernel has
    one of its own."""
    first, second = (run_kernel(separate_cases(RESTARTED), cache_dir, seed=seed) for seed in (1, 2))
    third = run_kernel(separate_cases({REPLACED: RESTARTED[REPLACED]}), cache_dir, seed=3)
    for case in RESTARTED:
        hits = [run[case]["cell hits"] for run in (first, second, third) if case in run]
        expected = [0, 0] if case in NOT_CACHED else [0, 0, 1] if case == REPLACED else [0, 1]
        assert hits == expected, f"{case}: cell hits {hits}, not {expected}"

    case = "weights set in place by a cached cell reach the optimizer"
    a, b = first[case], second[case]
    assert a["weight"] == b["weight"] == 0.7, case
    assert b["held"] is True, case

    case = "a view changed by a cached cell changes its base"
    a, b = first[case], second[case]
    assert a["base"] == b["base"] == [1.0, 1.0, 0.0, 0.0], case
    assert b["v"] == [1.0, 1.0], case

    case = "a training cell that steps an optimizer is restored whole and stays linked"
    a, b = first[case], second[case]
    assert b["opt_params"] is True, case
    assert a["weights"] == b["weights"], case
    assert a["running_mean"] == b["running_mean"], case

    case = "weights changed in place keep the model's hooks and attributes"
    a, b = first[case], second[case]
    assert (a["log"], a["cfg"], a["training"]) == (1, 2, False), case
    assert (b["log"], b["cfg"], b["training"]) == (1, 2, False), case

    for run in (first[REPLACED], second[REPLACED], third[REPLACED]):
        assert run["replaced"] and run["old"] and run["together"] is True, REPLACED

    case = "a bound method of a changed list keeps them together"
    assert first[case]["items"] == second[case]["items"] == [1, 2, 3], case

    case = "a hit never raises for an object with a strict __getattr__"
    assert first[case]["x"] == second[case]["x"] == 1, case

    case = "a list and an array changed in place stay the objects others hold"
    a, b = first[case], second[case]
    assert a["table"] == b["table"] == [1, 2], case
    assert b["same"] is True and b["view"] == [5.0, 5.0], case

    case = "a new name sharing part of a changed input keeps them together"
    a, b = first[case], second[case]
    assert a["together"] is True and b["together"] is True, case
    assert b["types"] == ["Linear", "ReLU"], case

    case = "a model the cell reads beside the trainer it trains is restored with it"
    a, b = first[case], second[case]
    assert b["linked"] is True and b["params"] is True, case
    assert a["w"] == b["w"], case

    case = "a model held by a trainer the cell trains is never left untrained"
    a, b = first[case], second[case]
    assert a["w"] == b["w"] and b["linked"] is True and b["params"] is True, case
    assert any("'model', which it does not read, holds part of it" in w for w in a["_warnings"]), case

    case = "an optimizer stepped alone is not cached when the notebook holds its model"
    a, b = first[case], second[case]
    assert a["w"] == b["w"] and b["same"] is True, case


ACC = """
%load_ext notebook_memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()

class Acc:
    def __init__(self, items):
        self.items = items

    def add(self, x):
        RUNS["n"] = RUNS.get("n", 0) + 1
        self.items.append(x)
"""

ADD = "%%memo acc\nacc.add(5)"


def test_a_hit_that_would_leave_a_new_holder_behind_runs_the_cell_and_explain_says_so(shell: Shell) -> None:
    shell.run(ACC)
    shell.run("acc = Acc([])")
    shell.run(ADD)  # stored: nothing else holds the list
    shell.run("acc = Acc([])\nrecord = {'items': acc.items}")  # as after a restart, with a new holder
    shell.run(ADD)
    assert shell["RUNS"]["n"] == 2 and shell["record"]["items"] is shell["acc"].items == [5]
    report = str(shell.run("%memo explain acc"))  # it ran, and could not be stored: 'record' holds the list
    assert "'record', which it does not read, holds part of it" in report and "MISS" in report, report
    shell.run("del record\nacc = Acc([])")
    shell.run(ADD)  # no holder now: the entry is restored
    assert shell["RUNS"]["n"] == 2 and shell["acc"].items == [5]


def test_a_holder_the_cell_does_not_read_makes_it_run_each_time_and_says_so(shell: Shell) -> None:
    shell.run(ACC)
    shell.run("items = []\nacc = Acc(items)\nbox = [items]\nsame = acc")
    with pytest.warns(StorageWarning, match="'box', which it does not read, holds part of it"):
        shell.run(ADD)
    shell.run(ADD)
    assert shell["RUNS"]["n"] == 2 and shell["box"][0] is shell["acc"].items == [5, 5] and shell["same"] is shell["acc"]
    assert "runs each time, unstored" in str(shell.run("%memo explain acc"))


def test_names_sharing_only_what_cannot_change_do_not_stop_a_cell_from_being_cached(shell: Shell) -> None:
    shell.run(ACC + """
import enum, logging, re
import numpy as np

class Mode(enum.Enum):
    TRAIN = 1

log = logging.getLogger("nbm")
pattern = re.compile("x")
kind = np.dtype("float32")
def loss(v):
    return v

settings = {"mode": Mode.TRAIN, "log": log, "pattern": pattern, "kind": kind, "loss": loss, "pair": (1, 2)}
""")
    fresh = "acc = Acc([])\nacc.mode, acc.log, acc.pattern, acc.kind, acc.loss = Mode.TRAIN, log, pattern, kind, loss"
    shell.run(fresh)
    shell.run(ADD)
    shell.run(fresh)
    shell.run(ADD)
    assert shell["RUNS"]["n"] == 1 and shell["acc"].items == [5]


def test_an_in_place_restore_that_fails_on_a_hit_runs_the_cell_when_others_hold_the_input(shell: Shell) -> None:
    # Restored in place, the array's holders see the change; bound to a copy they would not: so when
    # the copy into the live array cannot be made (it is read-only now), the cell runs, as it would.
    shell.run(ACC + "import numpy as np")
    fresh = "a = np.zeros(3)\nview = a[1:]"
    shell.run(fresh)
    cell = "%%memo grow\nRUNS['n'] = RUNS.get('n', 0) + 1\na += 5"
    shell.run(cell)
    shell.run(fresh + "\na.flags.writeable = False")
    result = shell.run_raw(cell)
    assert isinstance(result.error_in_exec, ValueError)  # what the plain cell does: a read-only array
    assert shell["RUNS"]["n"] == 2 and shell["view"].tolist() == [0.0, 0.0]


# -- grouping the notebook's names by what they share -------------------------------------------------


def test_names_are_grouped_by_the_objects_they_share_transitively() -> None:
    import collections
    import functools

    import numpy as np
    import torch

    from notebook_memo._in_place import linked_groups

    class Slotted:
        __slots__ = ("inner",)

        def __init__(self, inner: Any) -> None:
            self.inner = inner

    shared, other, queue = [1], {"k": 2}, collections.deque([0])
    base = np.zeros(4)
    weights = torch.zeros(4)
    numbers = np.ones(3)
    pair = (shared,)

    class Registry:
        members = [queue]

    values = {
        "a": {"x": shared}, "b": (0, [shared]), "c": functools.partial(print, other),  # a-b by a list
        "d": Slotted(other), "e": lambda: other,  # c-d-e by a dict, through a partial, slots, a closure
        "f": base[1:], "g": base[:2],  # two views of one array
        "h": weights[1:], "i": {"t": weights},  # a tensor and a view of it
        "j": (1, "s"), "k": (1, "s"),  # equal immutable values share nothing that matters
        "l": [0], "m": [0],
        "n": shared.append,  # a bound method holds its object
        "o": pair, "p": pair,  # a tuple reached from two names: what it holds links them (and a-b)
        "q": queue, "r": Registry,  # a deque; a class holding it as data
        "s": numbers, "t": torch.from_numpy(numbers),  # a tensor over an array's memory
    }
    groups = sorted(sorted(group) for group in linked_groups(values) or [])
    assert groups == [["a", "b", "n", "o", "p"], ["c", "d", "e"], ["f", "g"], ["h", "i"], ["q", "r"], ["s", "t"]]


def test_memoized_functions_do_not_link_names_through_the_store_they_share() -> None:
    from notebook_memo import memo
    from notebook_memo._in_place import linked_groups

    @memo
    def one(x: int) -> int:
        return x

    @memo
    def two(x: int) -> int:
        return x

    assert linked_groups({"one": one, "two": two, "pair": [one, two]}) == []


def test_a_walk_never_raises_for_an_object_that_cannot_be_looked_into() -> None:
    from notebook_memo._in_place import linked_groups

    class Proxy:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            raise RuntimeError("not configured")

    items: list[int] = []
    assert linked_groups({"p": [Proxy(), items], "q": items}) == [{"p", "q"}]


def test_values_too_large_to_walk_leave_the_groups_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _in_place

    monkeypatch.setattr(_in_place, "_LINK_LIMIT", 1000)
    assert _in_place.linked_groups({"many": [[i] for i in range(2000)]}) is None


OBJ = ACC + """
class Obj:
    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return f"Obj({self.n})"
"""


def test_a_name_that_held_another_input_before_the_stored_run_is_not_excused_for_holding_this_one(
        shell: Shell) -> None:
    shell.run(OBJ)
    cell = "%%memo grow\nRUNS['n'] = RUNS.get('n', 0) + 1\na.append(Obj(len(b)))"
    shell.run("a = [Obj(1)]\nb = [Obj(0)]")
    shell.run(cell)  # learns that the cell binds `a` to a copy on a hit
    shell.run("a = [Obj(2)]\nb = [Obj(0)]\nh = b")
    shell.run(cell)  # stored: `h` held `b` before this run, which the cell does not change
    shell.run("a = [Obj(2)]\nb = [Obj(0)]\nh = a")
    shell.run(cell)  # `h` holds `a` now: a hit would leave it without the new element
    assert repr(shell["h"]) == "[Obj(2), Obj(1)]" and shell["RUNS"]["n"] == 3


@pytest.mark.parametrize("then", ["a = a + [2]", "del a"])
def test_an_input_changed_in_place_then_bound_anew_is_not_left_unchanged_in_its_holder(
        then: str, shell: Shell) -> None:
    shell.run(ACC)
    cell = f"%%memo detach\nRUNS['n'] = RUNS.get('n', 0) + 1\na.append(1)\n{then}"
    shell.run("a = [0]\nh = a")
    with pytest.warns(StorageWarning, match="'h' holds it"):
        shell.run(cell)
    shell.run("a = [0]\nh = a")
    shell.run(cell)
    assert shell["h"] == [0, 1] and shell["RUNS"]["n"] == 2


def test_a_holder_of_a_standard_library_class_is_looked_into(shell: Shell) -> None:
    shell.run(OBJ + "import types, collections\n")
    fresh = "items = [Obj(0)]\nns = types.SimpleNamespace(items=items)\nseen = collections.ChainMap({'i': items})"
    shell.run(fresh)
    with pytest.warns(StorageWarning, match="'(ns|seen)', which it does not read, holds part of it"):
        shell.run("%%memo more\nRUNS['n'] = RUNS.get('n', 0) + 1\nitems.append(Obj(1))")
    assert repr(shell["seen"]["i"]) == "[Obj(0), Obj(1)]"


def test_a_gradient_another_name_holds_is_restored_into_not_replaced(shell: Shell) -> None:
    shell.run("import torch\n%load_ext notebook_memo")
    fresh = "t = torch.ones(3, requires_grad=True)\n(t * 2).sum().backward()\ng = t.grad"
    shell.run(fresh)
    shell.run("%%memo zero\nt.grad.zero_()")
    shell.run(fresh)
    shell.run("%%memo zero\nt.grad.zero_()")  # a hit: copied into the live tensor and its gradient
    assert shell["g"] is shell["t"].grad and shell["g"].tolist() == [0.0, 0.0, 0.0]
    assert sum(c.hits for c in __import__("notebook_memo")._cells._cells.values()) == 1
