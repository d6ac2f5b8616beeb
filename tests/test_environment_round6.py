"""The environment read inside libraries, and what is said of random generators (round 6).

A pydantic-settings class built in a body reads environment variables (and its env file) inside the
library's code: keyed by those variables, across restarts and within a kernel, without keying the
rest of the environment. A legacy numpy generator seeded by a computed value (``RandomState(seed + fold)``)
gives no warning of a random result; one given None still does; and memo.batch and %%memo warn of
unseeded generators as @memo does.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel

SETTINGS_CELL = """
from notebook_memo import memo
from pydantic_settings import BaseSettings, SettingsConfigDict
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_")
    alpha: float = 0.5
    n: int = 3
"""

BUILT_IN_BODY = """
@memo
def run():
    s = Settings()
    return s.alpha * s.n
OUT["r"] = run()
OUT["info"] = list(run.cache_info()[:2])
"""


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().startswith(("app_", "alpha_")) or name == "SLURM_JOB_ID":
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
def test_settings_built_in_a_body_is_keyed_by_its_variables_across_restarts(cache_dir: Path) -> None:
    first = run_kernel([SETTINGS_CELL, BUILT_IN_BODY], cache_dir, seed=1)
    assert first["r"] == 1.5 and first["info"] == [0, 1]
    changed = run_kernel([SETTINGS_CELL, BUILT_IN_BODY], cache_dir, seed=2, env={"APP_ALPHA": "2.0"})
    assert changed["r"] == 6.0 and changed["info"] == [0, 1]
    # The same variables, another hash seed and an unrelated variable changed: served, not computed again.
    again = run_kernel([SETTINGS_CELL, BUILT_IN_BODY], cache_dir, seed=3, env={"APP_ALPHA": "2.0", "SLURM_JOB_ID": "9"})
    assert again["r"] == 6.0 and again["info"] == [1, 0]


@pytest.mark.usefixtures("clean_environment")
def test_settings_passed_as_an_argument_still_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [SETTINGS_CELL, """
@memo
def scaled(s, k):
    return s.alpha * s.n * k
OUT["r"] = scaled(Settings(), 2)
OUT["info"] = list(scaled.cache_info()[:2])
"""]
    assert run_kernel(cells, cache_dir, seed=1)["info"] == [0, 1]
    again = run_kernel(cells, cache_dir, seed=2, env={"SLURM_JOB_ID": "7"})
    assert again["r"] == 3.0 and again["info"] == [1, 0]


@pytest.mark.usefixtures("clean_environment")
def test_settings_variables_are_matched_as_the_library_matches_them(shell: Shell,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("""
from notebook_memo import memo
from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
class Db(BaseModel):
    host: str = "local"
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__")
    alpha: float = 0.5
    beta: float = Field(1.0, validation_alias=AliasChoices("ALPHA_X", "ALPHA_Y"))
    db: Db = Db()
@memo
def run():
    s = Settings()
    return f"{s.alpha} {s.beta} {s.db.host}"
""")
    assert shell.run("run()") == "0.5 1.0 local"
    monkeypatch.setenv("app_alpha", "2.0")  # case does not count unless case_sensitive=True
    assert shell.run("run()") == "2.0 1.0 local"
    monkeypatch.setenv("ALPHA_Y", "3.0")  # the second of its aliases
    assert shell.run("run()") == "2.0 3.0 local"
    monkeypatch.setenv("APP_DB__HOST", "remote")  # a field of a nested model
    assert shell.run("run()") == "2.0 3.0 remote"
    monkeypatch.setenv("SLURM_JOB_ID", "11")  # not one it reads: served
    assert shell.run("run()") == "2.0 3.0 remote"
    assert shell.run("run.cache_info().hits") == 1


@pytest.mark.usefixtures("clean_environment")
def test_settings_env_file_created_after_a_run_is_read(shell: Shell, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shell.run("""
from notebook_memo import memo
from pydantic_settings import BaseSettings, SettingsConfigDict
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", env_file="app.env")
    alpha: float = 0.5
@memo
def run():
    return Settings().alpha
""")
    assert shell.run("run()") == 0.5
    (tmp_path / "app.env").write_text("APP_ALPHA=4.0\n")
    assert shell.run("run()") == 4.0
    (tmp_path / "app.env").write_text("APP_ALPHA=5.0\n")
    assert shell.run("run()") == 5.0


@pytest.mark.usefixtures("clean_environment")
def test_settings_with_their_own_sources_are_keyed_by_the_whole_environment(shell: Shell,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("""
from notebook_memo import memo
from pydantic_settings import BaseSettings, EnvSettingsSource
class Settings(BaseSettings):
    alpha: float = 0.5
    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, EnvSettingsSource(settings_cls, env_prefix="OTHER_"))
@memo
def run():
    return Settings().alpha
""")
    assert shell.run("run()") == 0.5
    monkeypatch.setenv("OTHER_ALPHA", "7.0")
    assert shell.run("run()") == 7.0


@pytest.mark.usefixtures("clean_environment")
def test_settings_with_nested_fields_are_not_keyed_by_every_variable_under_their_prefix(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("""
from notebook_memo import memo
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict
class Db(BaseModel):
    host: str = "local"
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__")
    alpha: float = 0.5
    db: Db = Db()
@memo
def run():
    s = Settings()
    return f"{s.alpha} {s.db.host}"
""")
    assert shell.run("run()") == "0.5 local"
    monkeypatch.setenv("APP_LOG_LEVEL", "DEBUG")  # under the prefix, but no field of it: the library ignores it
    assert shell.run("run()") == "0.5 local"
    monkeypatch.setenv("APP_DB__HOST", "remote")
    assert shell.run("run()") == "0.5 remote"
    assert shell.run("run.cache_info()[:2]") == (1, 2)


@pytest.mark.usefixtures("clean_environment")
def test_settings_whose_own_sources_only_reorder_the_standard_ones_are_keyed_by_their_variables(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("""
from notebook_memo import memo
from pydantic_settings import BaseSettings, SettingsConfigDict
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_")
    alpha: float = 0.5
    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (env_settings, init_settings)  # the documentation's example: the environment wins over arguments
@memo
def run():
    return Settings().alpha
""")
    assert shell.run("run()") == 0.5
    monkeypatch.setenv("UNRELATED_VARIABLE", "1")  # not one it reads: served
    assert shell.run("run()") == 0.5
    monkeypatch.setenv("APP_ALPHA", "4.0")
    assert shell.run("run()") == 4.0
    assert shell.run("run.cache_info()[:2]") == (1, 2)


# -- a legacy generator seeded by a computed value -----------------------------------------------------------------

COMPUTED_SEEDS = {
    "sum": "np.random.RandomState(seed + fold)",
    "subscript": 'np.random.RandomState(cfg["seed"])',
    "cast": "np.random.RandomState(int(seed))",
    "keyword_subscript": 'np.random.RandomState(seed=cfg["seed"])',
    "nested_call": "np.random.RandomState(abs(int(seed) - 2 * fold))",
    "dict_get": 'np.random.RandomState(cfg.get("seed", 0))',
    "imported_sum": "RandomState(seed * 3 + 1)",
}


@pytest.mark.parametrize("form", sorted(COMPUTED_SEEDS))
def test_a_legacy_generator_seeded_by_a_computed_value_gives_no_warning(form: str, shell: Shell) -> None:
    shell.run(f"""
    import numpy as np
    from numpy.random import RandomState
    from notebook_memo import memo

    @memo
    def sample(seed, fold, cfg):
        return float({COMPUTED_SEEDS[form]}.rand())
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = shell.run('sample(4, 1, {"seed": 7})')
        assert shell.run('sample(4, 1, {"seed": 7})') == first
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize("call", ['np.random.RandomState(cfg["seed"])', 'np.random.RandomState(cfg.get("none"))',
                                  "np.random.RandomState(seed=cfg['seed'])", "np.random.RandomState(CONFIG[0])"])
def test_a_legacy_generator_given_a_computed_none_still_warns(call: str, shell: Shell) -> None:
    shell.run(f"""
    import numpy as np
    from notebook_memo import memo
    CONFIG = [None]

    @memo
    def sample(cfg):
        return float({call}.rand())
    """)
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run('sample({"seed": None})')


def test_a_legacy_generator_seeded_through_a_call_s_result_warns(shell: Shell) -> None:
    """An item of what a helper returned cannot be read without calling it again: it may be None (another
    ``settings()`` gives ``{"seed": None}``), so it warns, as ``RandomState(None)`` does."""
    shell.run("""
    import numpy as np
    from notebook_memo import memo

    def settings():
        return {"seed": 5}

    @memo
    def sample():
        return float(np.random.RandomState(settings()["seed"]).rand())
    """)
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run("sample()")


# -- memo.batch and %%memo warn of an unseeded generator as @memo does --------------------------------------------

UNSEEDED = {"default_rng": "np.random.default_rng()", "legacy": "np.random.RandomState()"}


@pytest.mark.parametrize("generator", sorted(UNSEEDED))
def test_batch_warns_of_an_unseeded_generator_as_memo_does(generator: str, shell: Shell) -> None:
    shell.run(f"""
    import numpy as np
    from notebook_memo import memo

    @memo.batch("ids")
    def simulate(ids):
        return [float({UNSEEDED[generator]}.normal()) for i in ids]

    @memo
    def one(i):
        return float({UNSEEDED[generator]}.normal())
    """)
    with pytest.warns(MemoWarning, match="entropy") as single:
        shell.run("one(1)")
    with pytest.warns(MemoWarning, match="entropy") as batched:
        shell.run("simulate([1, 2])")
    said = next(str(w.message) for w in single if "entropy" in str(w.message))
    assert said.startswith("one seeds ")
    assert [str(w.message) for w in batched if "entropy" in str(w.message)] == ["simulate" + said[len("one"):]]


def test_batch_seeded_per_item_gives_no_warning(shell: Shell) -> None:
    shell.run("""
    import numpy as np
    from notebook_memo import memo

    @memo.batch("ids")
    def simulate(ids, base_seed=100):
        return [float(np.random.RandomState(base_seed + i).normal()) for i in ids]
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("simulate([1, 2, 3])")
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize("generator", sorted(UNSEEDED))
def test_cell_warns_of_an_unseeded_generator_as_memo_does(generator: str, shell: Shell) -> None:
    shell.run("""
    import numpy as np
    get_ipython().run_line_magic('load_ext', 'notebook_memo')
    """)
    with pytest.warns(MemoWarning, match="entropy") as caught:
        shell.run(f"%%memo sim\nsample = float({UNSEEDED[generator]}.normal())\n")
    said = [str(w.message) for w in caught if "entropy" in str(w.message)]
    assert said and said[0].startswith("%%memo sim seeds ") and "its result is random" in said[0], said


def test_cell_seeded_by_a_computed_value_gives_no_warning(shell: Shell) -> None:
    shell.run("""
    import numpy as np
    get_ipython().run_line_magic('load_ext', 'notebook_memo')
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run('%%memo sim\nsample = np.random.RandomState(int("42")).normal(size=3).tolist()\n')
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]
