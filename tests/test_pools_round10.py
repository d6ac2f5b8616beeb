"""Memoized functions in worker pools, round ten: a classmethod of a notebook class, and a per-instance method of a
notebook object, sent to a spawned pool (whose plain pickle cannot name a notebook class) travel with the class by
value, and the classmethod keeps the notebook's keys; those of importable classes still travel by reference."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.conftest import run_kernel


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

        class Scaler:
            def __init__(self, k):
                self.k = k

            @memo.per_instance
            def times(self, x):
                return self.k * x

        s = Scaler(4)
        OUT["here"] = s.times(2)
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            OUT["there"] = list(pool.map(s.times, [1, 2, 3]))
        OUT["again"] = s.times(3)
        """,
    ], tmp_path / "cache")
    assert (out["here"], out["there"], out["again"]) == (8, [4, 8, 12], 12)
