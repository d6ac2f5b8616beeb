"""Memoized functions in worker pools, round ten: a classmethod of a notebook class, and a per-instance method of a
notebook object, sent to a spawned pool (whose plain pickle cannot name a notebook class) travel with the class's
definition, and the classmethod keeps the notebook's keys; those of importable classes still travel by reference. A
forked worker that has the class, with the same definition, uses its own (what its pool's initializer set up), as a
plain method does; one forked before the notebook defined the class again uses the copy it was sent."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel


def test_a_classmethod_of_a_notebook_class_goes_to_spawned_workers_with_the_notebook_s_keys(tmp_path: Path) -> None:
    """The bound object of a classmethod is the class itself: a notebook class (or one whose metaclass is
    importable, such as an ``abc.ABC``) cannot be named by a spawned worker, so it travels by value."""
    log = tmp_path / "body.log"
    out = run_kernel([
        f"""
        import abc, concurrent.futures, multiprocessing
        from notebook_memo import memo
        LOG = {str(log)!r}
        def note(text):
            with open(LOG, "a") as fh:
                fh.write(text + "\\n")
        """,
        """
        class Plain:
            scale = 3

            @classmethod
            @memo
            def times(cls, x):
                note(f"plain {x}")
                return cls.scale * x

        class Abstract(abc.ABC):
            scale = 5

            @memo
            @classmethod
            def times(cls, x):
                note(f"abstract {x}")
                return cls.scale * x
        """,
        """
        OUT["here"] = [Plain.times(1), Abstract.times(1)]
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            OUT["there"] = [list(pool.map(Plain.times, [1, 2])), list(pool.map(Abstract.times, [1, 2]))]
        OUT["again"] = [Plain.times(2), Abstract.times(2)]
        OUT["hits"] = [Plain.times.hits, Abstract.times.hits]
        """,
    ], tmp_path / "cache")
    assert out["here"] == [3, 5]
    assert out["there"] == [[3, 6], [5, 10]]
    assert out["again"] == [6, 10]
    assert out["hits"] == [1, 1]  # the workers computed 2, and the notebook's key is theirs
    # Each body ran once: the workers hit what the notebook computed, and the notebook what they did.
    assert sorted(log.read_text().splitlines()) == ["abstract 1", "abstract 2", "plain 1", "plain 2"]


CLASSMETHOD_MODULE = """
from notebook_memo import memo


class Rates:
    base = 2

    @classmethod
    @memo
    def scaled(cls, x):
        return cls.base * x
"""


def test_a_classmethod_of_an_importable_class_still_travels_by_reference(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rates_round10.py").write_text(CLASSMETHOD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import rates_round10  # type: ignore[import-not-found]

    bound = pickle.loads(pickle.dumps(rates_round10.Rates.scaled))
    assert bound._obj is rates_round10.Rates  # the class itself, not a copy made from its pickled value
    assert bound(4) == 8


def test_a_per_instance_method_of_a_notebook_object_goes_to_spawned_workers(tmp_path: Path) -> None:
    """As a memoized method of a notebook object does: the object travels by value, with empty caches."""
    out = run_kernel([
        """
        import concurrent.futures, multiprocessing
        from notebook_memo import memo

        class Unit:
            def __init__(self, size):
                self.size = size

        class Scaler:
            def __init__(self, k):
                self.k = k
                self.unit = Unit(1)  # an object of another notebook class, and a lambda, travel with it
                self.shift = lambda v: v + self.unit.size - 1

            @memo.per_instance
            def times(self, x):
                return self.shift(self.k * x)

        s = Scaler(4)
        OUT["here"] = s.times(2)
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            OUT["there"] = list(pool.map(s.times, [1, 2, 3]))
        OUT["again"] = s.times(3)
        """,
    ], tmp_path / "cache")
    assert (out["here"], out["there"], out["again"]) == (8, [4, 8, 12], 12)


def test_a_notebook_object_s_methods_in_a_forked_pool_read_the_class_its_initializer_set_up(shell: Shell) -> None:
    """A plain method sent to a forked worker runs on the worker's class, which the pool's initializer may have set
    up (a model loaded into a class attribute): a memoized or per-instance method, and a classmethod, do too."""
    shell.run("""
        import multiprocessing
        from notebook_memo import memo

        class Model:
            weights = 1

            def __init__(self, k):
                self.k = k

            def plain(self, x):
                return self.k * x * self.weights

            @memo
            def predict(self, x):
                return self.k * x * self.weights

            @memo.per_instance
            def times(self, x):
                return self.k * x * self.weights

            @classmethod
            @memo
            def scaled(cls, x):
                return x * cls.weights

        def load():
            Model.weights = 100

        m = Model(2)
        with multiprocessing.get_context("fork").Pool(1, initializer=load) as pool:
            there = [pool.map(m.plain, [1, 2]), pool.map(m.predict, [1, 2]), pool.map(m.times, [1, 2]),
                     pool.map(Model.scaled, [1, 2])]
    """)
    assert shell["there"] == [[200, 400], [200, 400], [200, 400], [100, 200]]
    assert shell.run("[m.predict(1), m.times(1), Model.scaled(1)]") == [2, 2, 1]  # the notebook's own class


def test_a_worker_forked_before_a_notebook_class_was_defined_again_runs_the_new_definition(shell: Shell) -> None:
    """Its class of that name is the old one: the sent copy of the new one serves (a guard: the methods never ran
    the old code)."""
    shell.run("""
        import multiprocessing
        from notebook_memo import memo

        class Model:
            def __init__(self, k):
                self.k = k

            @memo
            def predict(self, x):
                return self.k * x

            @memo.per_instance
            def times(self, x):
                return self.k * x

        pool = multiprocessing.get_context("fork").Pool(1)
    """)
    try:
        shell.run("""
            class Model:
                def __init__(self, k):
                    self.k = k

                @memo
                def predict(self, x):
                    return self.k * x + 1000

                @memo.per_instance
                def times(self, x):
                    return self.k * x + 1000

            m = Model(2)
            there = [pool.map(m.predict, [1, 2]), pool.map(m.times, [1, 2])]
        """)
    finally:
        shell.run("pool.terminate(); pool.join()")
    assert shell["there"] == [[1002, 1004], [1002, 1004]]
