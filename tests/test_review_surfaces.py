"""Neighbours of the notebook surfaces of issue 14: the cases next to the ones fixed, in a real shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_memo._cells import cells
from tests.conftest import Shell


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo\nfrom notebook_memo import memo\nimport notebook_memo")
    shell.run("class _Runs(list):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    return shell


# -- %%memo --ttl with the value quoted, as a shell would take it -----------------------------------

@pytest.mark.parametrize("ttl", ['"6 hours"', "'6 hours'"])
def test_a_quoted_ttl_is_read_without_its_quotes(ip: Shell, ttl: str) -> None:
    ip.run(f"%%memo quoted --ttl {ttl}\nRUNS.append(1)")
    [cell] = [c for c in cells() if c.label == "quoted"]
    assert cell.ttl == 6 * 3600 and len(ip["RUNS"]) == 1


def test_a_quoted_cell_name_is_the_name(ip: Shell) -> None:
    ip.run("%%memo 'my cell'\nRUNS.append(1)")
    assert "my cell" in [c.label for c in cells()]


def test_an_unclosed_quote_is_a_usage_error(ip: Shell) -> None:
    from IPython.core.error import UsageError

    result = ip.run_raw("%%memo --ttl \"6 hours\nRUNS.append(1)")
    assert isinstance(result.error_in_exec, UsageError) and "%%memo" in str(result.error_in_exec)
    assert ip["RUNS"] == []


# -- a batch function's refresh() recomputes items, like memo.refreshing() ----------------------------

BATCH = """
@memo.batch("texts")
def embed(texts):
    RUNS.append(list(texts))
    return [len(t) * STEP for t in texts]
"""


@pytest.fixture
def bx(ip: Shell) -> Shell:
    ip.run("STEP = 1")
    ip.run(BATCH)
    return ip


def test_batch_refresh_overwrites_the_items_it_is_given(bx: Shell) -> None:
    bx.run("embed(['a', 'bb', 'ccc'])")
    assert bx.run("embed.refresh(['a', 'bb'])") == [1, 2]
    assert bx["RUNS"][-1] == ["a", "bb"]
    info = bx.run("embed.cache_info()")
    assert info.currsize == 3  # the items, not one more entry for the whole list
    bx.run("embed(['a', 'bb', 'ccc'])")
    assert len(bx["RUNS"]) == 2  # served: the refreshed items were overwritten, not stored elsewhere


def test_batch_refresh_is_a_probe_for_explain_last(bx: Shell) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run("embed(['a', 'bb'])")
    bx.run("embed.refresh(['a'])")
    assert bx.run("embed.explain_last()").hit


def test_async_batch_refresh_recomputes(ip: Shell) -> None:
    ip.run('@memo.batch("texts")\nasync def aembed(texts):\n    RUNS.append(list(texts))\n'
           '    return [len(t) for t in texts]')
    ip.run("await aembed(['a', 'bb'])")
    assert ip.run("await aembed.refresh(['a'])") == [1]
    assert ip["RUNS"] == [["a", "bb"], ["a"]]
    assert ip.run("aembed.cache_info().currsize") == 2


# -- explain_last of a call that recomputed an entry its key had: refreshed, expired, inputs changed ------

@pytest.fixture
def fx(ip: Shell) -> Shell:
    ip.run("@memo\ndef score(x):\n    RUNS.append(x)\n    return x * 2")
    return ip


def _last(shell: Shell, name: str) -> str:
    return str(shell.run(f"%memo explain {name}"))


def test_explain_last_after_memo_refreshing_says_so(fx: Shell) -> None:
    fx.run("score(1)")
    fx.run("with memo.refreshing():\n    score(1)")
    report = _last(fx, "score")
    assert "MISS" in report and "memo.refreshing()" in report and "nothing is cached" not in report


def test_explain_last_after_expiry_says_it_expired(ip: Shell) -> None:
    ip.run("@memo(ttl=0.2)\ndef brief(x):\n    return x")
    ip.run("brief(1)")
    ip.run("import time; time.sleep(0.5)")
    ip.run("brief(1)")
    report = _last(ip, "brief")
    assert "MISS" in report and "expired" in report and "nothing is cached" not in report


def test_explain_last_after_a_data_file_changed_names_it(ip: Shell, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")
    ip.run(f"DATA = {str(data)!r}\n@memo\ndef load(path):\n    with open(path) as f:\n        return f.read()")
    ip.run("load(DATA)")
    data.write_text("two, longer")
    assert ip.run("load(DATA)") == "two, longer"
    report = _last(ip, "load")
    assert "MISS" in report and "data.txt changed" in report and "nothing is cached" not in report


def test_explain_last_of_a_draw_under_another_random_state(ip: Shell) -> None:
    ip.run("import random\n@memo\ndef draw(n):\n    return random.random() + n")
    ip.run("random.seed(1); draw(1)")
    ip.run("random.seed(2); draw(1)")
    report = _last(ip, "draw")
    assert "MISS" in report and "random" in report and "another key format" not in report


def test_async_explain_last_after_memo_refreshing_says_so(ip: Shell) -> None:
    ip.run("@memo\nasync def fetch(x):\n    return x")
    ip.run("await fetch(1)")
    ip.run("with memo.refreshing():\n    await fetch(1)")
    report = _last(ip, "fetch")
    assert "MISS" in report and "memo.refreshing()" in report


def test_batch_explain_last_after_memo_refreshing_says_so(bx: Shell) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run("with memo.refreshing():\n    embed(['a', 'bb'])")
    report = _last(bx, "embed")
    assert "2 computed" in report and "memo.refreshing()" in report and "first run" not in report


def test_batch_explain_last_after_expiry_says_it_expired(ip: Shell) -> None:
    ip.run('@memo.batch("xs", ttl=0.2)\ndef brief(xs):\n    return [x for x in xs]')
    ip.run("brief([1, 2])")
    ip.run("import time; time.sleep(0.5)")
    ip.run("brief([1, 2])")
    report = _last(ip, "brief")
    assert "2 computed" in report and "expired" in report and "first run" not in report


def test_cell_explain_last_after_refresh_says_so(ip: Shell) -> None:
    ip.run("%%memo counted\nRUNS.append(1)")
    ip.run("%%memo counted --refresh\nRUNS.append(1)")
    report = _last(ip, "counted")
    assert len(ip["RUNS"]) == 2
    assert "MISS" in report and "--refresh" in report and "nothing is cached" not in report


# -- a body that draws from a global random generator: its marker entry is not a result --------------

DRAW = "import random\n@memo\ndef draw(n):\n    return random.random() + n{edit}"


def test_clear_counts_results_not_random_state_markers(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run(DRAW.format(edit=""))
    ip.run("draw(1)")
    assert ip.run("draw.cache_info().currsize") == 1
    assert ip.run("draw.clear()") == 1
    assert ip.run("len(draw.entries())") == 0
    ip.run("draw(1)")
    capsys.readouterr()
    ip.run("%memo clear draw")
    assert "removed 1 entries of draw" in capsys.readouterr().out


def test_stale_notice_and_clear_stale_count_what_info_counts(ip: Shell) -> None:
    import warnings

    from notebook_memo import StaleEntriesWarning

    ip.run(DRAW.format(edit=""))
    ip.run("draw(1); draw(2)")
    ip.run(DRAW.format(edit=" + 0"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run("draw(1)")
    [notice] = [str(w.message) for w in caught if issubclass(w.category, StaleEntriesWarning)]
    assert notice.startswith("draw: 2 cached entries")
    [row] = [line for line in repr(ip.run("%memo info")).splitlines() if "draw" in line]
    assert row.split()[9] == "2"  # name, kind, entries, versions, size (two words), hits, saved (two), stale
    assert ip.run("draw.clear_stale()") == 2
    assert ip.run("draw.cache_info().currsize") == 1


def test_cli_clear_counts_results_not_markers(ip: Shell, cache_dir: Path) -> None:
    import subprocess
    import sys

    ip.run(DRAW.format(edit=""))
    ip.run("draw(1); draw(2)")
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "clear", "--function", "draw", "--dir",
                          str(cache_dir)], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "removed 2 entries"


# -- the notebook's path given relative (Jupyter's API path), then %cd in the notebook ---------------

def test_a_relative_notebook_path_names_one_notebook_after_cd(ip: Shell, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    ip.run("__session__ = 'analysis.ipynb'")
    ip.run("@memo\ndef load(n):\n    return n\nload(1)")
    monkeypatch.chdir(tmp_path / "data")  # what %cd data does
    ip.run("@memo\ndef load(n):\n    return n\nload(2)")
    assert ip.run("load.cache_info().currsize") == 2  # one function of one notebook
    capsys.readouterr()
    ip.run("%memo clear")
    assert "removed 2 entries" in capsys.readouterr().out


# -- %memo explain/clear NAME for methods: Class.method, and a short name two functions share --------

CLASSES = """
class Model:
    def __memo_key__(self): return 'model'
    @memo
    def fit(self, x):
        return x
class Other:
    def __memo_key__(self): return 'other'
    @memo
    def fit(self, x):
        return -x
Model().fit(1); Other().fit(1); Other().fit(2)
"""


def test_explain_and_clear_take_class_dot_method(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run(CLASSES)
    assert str(ip.run("%memo explain Model.fit")).startswith("Model.fit: ")
    capsys.readouterr()
    ip.run("%memo clear Other.fit")
    assert "removed 2 entries of Other.fit" in capsys.readouterr().out
    assert ip.run("Model.fit.cache_info().currsize") == 1


def test_a_short_name_two_functions_share_is_refused(ip: Shell) -> None:
    from IPython.core.error import UsageError

    ip.run(CLASSES)
    result = ip.run_raw("%memo clear fit")
    assert isinstance(result.error_in_exec, UsageError)
    assert "Model.fit" in str(result.error_in_exec) and "Other.fit" in str(result.error_in_exec)
    assert ip.run("Model.fit.cache_info().currsize, Other.fit.cache_info().currsize") == (1, 2)


def test_cli_clear_takes_class_dot_method(ip: Shell, cache_dir: Path) -> None:
    import subprocess
    import sys

    ip.run(CLASSES)
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "clear", "--function", "Other.fit", "--dir",
                          str(cache_dir)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "removed 2 entries", out.stderr
    assert ip.run("Model.fit.cache_info().currsize") == 1


# -- memo.batch(batch_size=...) that is not a whole number is refused at decoration --------------------

@pytest.mark.parametrize("size", ["10", 2.5, True])
def test_a_batch_size_that_is_not_a_count_is_refused_at_decoration(size: object) -> None:
    from notebook_memo import ConfigurationError, memo

    with pytest.raises(ConfigurationError, match="batch_size"):
        memo.batch("xs", batch_size=size)(lambda xs: xs)


# -- a cell that parses but does not compile (return, break, yield outside their place) ----------------

def _shown(capsys: pytest.CaptureFixture[str]) -> str:
    import re

    captured = capsys.readouterr()
    return re.sub(r"\x1b\[[0-9;]*m", "", captured.out + captured.err)


@pytest.mark.parametrize("line, message", [("return 5", "'return' outside function"),
                                           ("break", "'break' outside loop"),
                                           ("nonlocal RUNS", "nonlocal declaration not allowed at module level")])
def test_a_compile_error_in_a_cell_is_reported_as_in_an_ordinary_cell(
        ip: Shell, capsys: pytest.CaptureFixture[str], line: str, message: str) -> None:
    capsys.readouterr()
    result = ip.run_raw(f"%%memo\nRUNS.append(1)\n{line}\n")
    text = _shown(capsys)
    assert isinstance(result.error_before_exec or result.error_in_exec, SyntaxError), text
    assert f"Cell In[{result.execution_count}], line 3" in text and message in text, text
    assert "notebook_memo" not in text and "Traceback" not in text, text
    assert "nothing cached" in repr(ip.run("%memo info"))


# -- NOTEBOOK_MEMO_DISABLE turns cells off too, as %memo off does ---------------------------------------

def test_the_disable_variable_runs_cells_and_stores_nothing(ip: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _config

    monkeypatch.setenv(_config.ENV_DISABLE, "1")
    ip.run("%%memo counted\nRUNS.append(1)")
    ip.run("%%memo counted\nRUNS.append(1)")
    assert len(ip["RUNS"]) == 2
    assert "nothing cached" in repr(ip.run("%memo info"))
    assert "caching off" in str(ip.run("%memo explain counted"))


def test_explain_of_a_cell_run_under_memo_off_says_so(ip: Shell) -> None:
    ip.run("%%memo counted\nRUNS.append(1)")
    ip.run("%memo off")
    ip.run("%%memo counted\nRUNS.append(1)")
    assert len(ip["RUNS"]) == 2
    report = str(ip.run("%memo explain counted"))
    assert "MISS" in report and "caching off" in report


# -- the CLI on a cache whose index is garbage: one line on stderr, and a failure exit code ---------------

def test_cli_info_on_a_garbage_index_says_so_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from notebook_memo import _config

    cache = tmp_path / "planted"
    env = {**os.environ, _config.ENV_DIR: str(cache)}
    subprocess.run([sys.executable, "-c", "from notebook_memo import memo\nf = memo(lambda x: x)\nf(1)"],
                   env=env, check=True, timeout=60)
    (cache / "cache.db").write_bytes(b"this is not a database, " * 200)
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--dir", str(cache)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notebook-memo: ") and "damaged" in lines[0], out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("option, value, said", [("--max-size", "-5GB", "'-5GB'"),
                                                 ("--older-than", "-1h", "positive")])
def test_cli_negative_values_are_one_line_usage_errors(cache_dir: Path, option: str, value: str, said: str) -> None:
    import subprocess
    import sys

    from notebook_memo import memo

    memo(lambda x: x)(1)
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "prune", "--dir", str(cache_dir), option, value],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"notebook-memo: {option}") and said in lines[0], out.stderr


@pytest.mark.parametrize("ttl", ["-1h", "- 90 min", "-1 day"])
def test_a_negative_ttl_in_words_is_refused_as_not_positive(ttl: str) -> None:
    from notebook_memo import memo

    with pytest.raises(ValueError, match="must be positive"):
        memo(ttl=ttl)(lambda x: x)


# -- %memo clear NAME in a restarted kernel, before the function is defined again ----------------------

def test_clear_name_in_a_restarted_kernel_clears_this_notebooks_entries(cache_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_kernel

    head = "%load_ext notebook_memo\nfrom notebook_memo import memo"
    define = "@memo\ndef load(n):\n    return ({!r}, n)\nload(1); load(2)"
    a, b = str(tmp_path / "a.ipynb"), str(tmp_path / "b.ipynb")
    run_kernel([head, f"__session__ = {a!r}", define.format("a")], cache_dir)
    run_kernel([head, f"__session__ = {b!r}", define.format("b")], cache_dir)
    out = run_kernel([head, f"__session__ = {a!r}",
                      "import io, contextlib\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n"
                      "    get_ipython().run_line_magic('memo', 'clear load')\nOUT['said'] = buf.getvalue()",
                      "import notebook_memo._inventory as inv, notebook_memo.stores.local as st, os\n"
                      "records = inv.Inventory(st.get_store(os.environ['NOTEBOOK_MEMO_DIR'], 2**30)).records()\n"
                      "OUT['left'] = sorted(os.path.basename(m.get('notebook', '')) for _, m in records)"], cache_dir)
    assert "removed 2 entries of load" in out["said"]
    assert out["left"] == ["b.ipynb", "b.ipynb"]


# -- explain_last of a call that raised ----------------------------------------------------------------

def test_explain_last_of_a_call_that_raised_says_so(fx: Shell) -> None:
    fx.run("@memo\ndef parse(text):\n    return int(text)")
    fx.run("parse('1')")
    result = fx.run_raw("parse('x')")
    assert isinstance(result.error_in_exec, ValueError)
    report = _last(fx, "parse")
    assert "MISS" in report and "raised ValueError" in report


def test_async_explain_last_of_a_call_that_raised_says_so(ip: Shell) -> None:
    ip.run("@memo\nasync def parse(text):\n    return int(text)")
    ip.run("await parse('1')")
    result = ip.run_raw("await parse('x')")
    assert isinstance(result.error_in_exec, ValueError)
    report = _last(ip, "parse")
    assert "MISS" in report and "raised ValueError" in report


def test_batch_explain_last_of_a_call_that_raised_reports_that_call(bx: Shell) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run("embed(['a', 'bb'])")  # a full hit
    result = bx.run_raw("embed(['a', 'bb', 3])")  # len(3) raises
    assert isinstance(result.error_in_exec, TypeError)
    report = _last(bx, "embed")
    assert "MISS" in report and "raised TypeError" in report and "2 of 2 items cached" not in report


# -- %memo info's stale column counts what %memo clear --stale removes --------------------------------

def _stale_column(shell: Shell, name: str) -> str:
    [row] = [line for line in repr(shell.run("%memo info")).splitlines() if line.startswith(f"__main__.{name} ")]
    return row.split()[9]  # name, kind, entries, versions, size (two words), hits, saved (two words), stale


def test_info_counts_a_batch_functions_stale_items(bx: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run(BATCH.replace("len(t) * STEP", "len(t) * STEP + 0"))
    bx.run("embed(['a'])")
    assert _stale_column(bx, "embed") == "2"
    capsys.readouterr()
    bx.run("%memo clear --stale")
    assert "removed 2 stale entries" in capsys.readouterr().out


def test_info_counts_stale_entries_of_a_function_redefined_but_not_called(fx: Shell) -> None:
    fx.run("score(1); score(2)")
    fx.run("@memo\ndef score(x):\n    return x * 3")
    assert _stale_column(fx, "score") == "2"


def test_cell_explain_after_a_refresh_that_raised(ip: Shell) -> None:
    body = "RUNS.append(1)\nif len(RUNS) > 1:\n    raise RuntimeError('network down')"
    ip.run(f"%%memo flaky\n{body}")
    result = ip.run_raw(f"%%memo flaky --refresh\n{body}")
    assert isinstance(result.error_in_exec, RuntimeError)
    report = _last(ip, "flaky")
    assert "MISS" in report and "raised RuntimeError: network down" in report and "overwr" not in report
    ip.run("del RUNS[:]")
    ip.run(f"%%memo flaky\n{body}")
    assert "HIT" in _last(ip, "flaky")  # the entry the failed refresh did not replace is served
    assert ip["RUNS"] == []


def test_explain_after_memo_refreshing_that_raised_does_not_claim_an_overwrite(ip: Shell) -> None:
    ip.run("@memo\ndef fetch(x):\n    if RUNS:\n        raise RuntimeError('network down')\n    RUNS.append(x)\n"
           "    return x")
    ip.run("fetch(1)")
    result = ip.run_raw("with memo.refreshing():\n    fetch(1)")
    assert isinstance(result.error_in_exec, RuntimeError)
    report = _last(ip, "fetch")
    assert "raised RuntimeError" in report and "memo.refreshing()" in report and "overwr" not in report


# -- %reload_ext notebook_memo, then configure() imported before it ------------------------------------

def test_configure_imported_before_reload_ext_still_works(ip: Shell, tmp_path: Path) -> None:
    ip.run("from notebook_memo import configure")
    ip.run("%reload_ext notebook_memo")
    ip.run(f"configure(cache_dir={str(tmp_path / 'elsewhere')!r})")
    assert ip.run("notebook_memo._config.settings.size_limit") is None


# -- NOTEBOOK_MEMO_VERBOSE, and what overrides it ---------------------------------------------------------

def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("[notebook_memo]")]


def test_the_verbose_variable_prints_a_line_per_call(bx: Shell, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from notebook_memo import _config

    monkeypatch.setenv(_config.ENV_VERBOSE, "1")
    bx.run("@memo\ndef score(x):\n    return x")
    capsys.readouterr()
    bx.run("score(1); score(1); embed(['a']); embed(['a'])")
    bx.run("%%memo counted\nRUNS.append(1)")
    lines = _lines(capsys)
    assert len(lines) == 5 and "score: computed" in lines[0] and "score: from cache" in lines[1], lines
    assert "embed: 0 of 1 from cache" in lines[2] and "embed: 1 of 1 from cache" in lines[3], lines


@pytest.mark.parametrize("silence", ["notebook_memo.configure(verbose=False)", "notebook_memo.configure(verbose=0)",
                                     "score = memo(verbose=0)(score.__wrapped__)"])
def test_verbose_off_in_code_wins_over_the_variable(ip: Shell, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], silence: str) -> None:
    from notebook_memo import _config

    monkeypatch.setenv(_config.ENV_VERBOSE, "1")
    ip.run("@memo\ndef score(x):\n    return x")
    ip.run(silence)
    capsys.readouterr()
    ip.run("score(1); score(1)")
    assert _lines(capsys) == []


def test_batch_explain_after_expiry_says_the_items_expired(ip: Shell) -> None:
    ip.run('@memo.batch("xs", ttl=0.2)\ndef brief(xs):\n    return [x for x in xs]')
    ip.run("brief([1, 2])")
    ip.run("import time; time.sleep(0.5)")
    report = str(ip.run("brief.explain([1, 2])"))
    assert "2 of 2 distinct items are not cached" in report
    assert "expired" in report and "never computed" not in report


def test_a_batch_call_with_duplicates_says_how_many_were_given(bx: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    bx.run("embed = memo.batch('texts', verbose=1)(embed.__wrapped__)")
    capsys.readouterr()
    bx.run("embed(['a', 'a', 'bb'])")
    assert "0 of 2 distinct (3 given) from cache" in capsys.readouterr().out
    assert "0 of 2 distinct items (3 given) from the cache" in _last(bx, "embed")
    assert bx["RUNS"] == [["a", "bb"]]


def test_memo_dir_given_relative_stays_that_folder_after_cd(ip: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    ip.run("%memo dir my_cache")
    chosen = capsys.readouterr().out.strip()
    assert chosen == str(tmp_path / "my_cache")
    monkeypatch.chdir(tmp_path / "data")
    ip.run("%memo dir")
    assert capsys.readouterr().out.strip() == chosen


def test_the_unstorable_warning_for_two_variables_says_them(ip: Shell) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run("%%memo\nimport threading\nfirst = threading.Lock()\nsecond = threading.Lock()")
    [message] = [str(w.message) for w in caught if "cannot be stored" in str(w.message)]
    assert "'first', 'second'" in message and "create them in another cell" in message


# -- memo.cached_property / memo.per_instance given a TTL by position, or a bad one ---------------------

@pytest.mark.parametrize("decorator", ["cached_property", "per_instance"])
def test_a_ttl_given_by_position_is_a_clear_error(decorator: str) -> None:
    from notebook_memo import memo

    with pytest.raises(TypeError, match="ttl=3600"):
        getattr(memo, decorator)(3600)


@pytest.mark.parametrize("decorator", ["cached_property", "per_instance"])
def test_a_bad_ttl_is_refused_at_the_parentheses(decorator: str) -> None:
    from notebook_memo import memo

    with pytest.raises(ValueError, match="soon"):
        getattr(memo, decorator)(ttl="soon")


# -- explain_last of a call made with caching off -----------------------------------------------------------

@pytest.mark.parametrize("off", ["%memo off", "with memo.disabled():\n    {call}"])
def test_explain_last_of_a_call_with_caching_off_says_so(fx: Shell, bx: Shell, off: str) -> None:
    fx.run("score(1); score(1)")
    bx.run("embed(['a']); embed(['a'])")
    for call, name in (("score(1)", "score"), ("embed(['a'])", "embed")):
        if off.startswith("%"):
            fx.run(off)
            fx.run(call)
            fx.run("%memo on")
        else:
            fx.run(off.format(call=call))
        report = _last(fx, name)
        assert "MISS" in report and "caching off" in report, report
