"""Process-wide settings a body leaves changed beyond those first compared: a named logger's level, handlers,
propagation and disabling, the root logger's handlers (logging.basicConfig, addHandler, removeHandler, a handler's
level and format), the function that shows warnings (logging.captureWarnings), the recursion limit and the file
mode mask (os.umask). A hit would not change them again, so such a run is not stored and one MemoWarning names the
change; a body that puts them back, or only logs, stays cached, and misses running in two threads at once are no
change of the limit. Real shells, and a real kernel restarted."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebook_memo import MemoWarning, StorageWarning
from tests.conftest import Counter, Shell, run_kernel

NAME = "nbm.round9"  # the named logger these tests change


def _said(shell: Shell, source: str) -> list[str]:
    """Run a cell; return the warnings of ours it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, (MemoWarning, StorageWarning))]


@pytest.fixture
def loggers_restored() -> Iterator[logging.Handler]:
    """The root logger with one handler of the test's (yielded), and it and the named logger as they were after."""
    root, named = logging.getLogger(), logging.getLogger(NAME)
    root_state = (root.level, list(root.handlers))
    named_state = (named.level, named.propagate, named.disabled, list(named.handlers))
    handler = logging.NullHandler()
    root.handlers[:] = [handler]
    yield handler
    root.level, root.handlers[:] = root_state[0], root_state[1]
    named.level, named.propagate, named.disabled, named.handlers[:] = named_state
    logging.getLogger().setLevel(root_state[0])  # and the loggers' caches of their levels, cleared


def _define(shell: Shell, counter: Counter, body: str, old: logging.Handler) -> None:
    """Define ``setup``, running ``body``; OLD is the root logger's handler, HANDLER another."""
    shell.ip.user_ns.update(counter=counter, NAME=NAME, HANDLER=logging.NullHandler(), OLD=old)
    shell.run("""
        import logging
        from notebook_memo import memo

        LOG = logging.getLogger(NAME)

        def quiet():
            logging.getLogger(NAME).setLevel(logging.ERROR)
        """)
    shell.run("@memo\ndef setup():\n    counter()\n" + textwrap.indent(body, "    ") + "\n    return 1")


LEFT_BODIES = {
    "named_level": ("logging.getLogger(NAME).setLevel(7)", f"level=7 on the logger '{NAME}'"),
    "named_level_through_a_global": ("LOG.setLevel(8)", f"level=8 on the logger '{NAME}'"),
    "named_level_in_a_helper": ("quiet()", f"level=40 on the logger '{NAME}'"),
    "named_handler": ("LOG.addHandler(HANDLER)", f"adds the handler <NullHandler (NOTSET)> to the logger '{NAME}'"),
    "named_propagate": ("logging.getLogger(NAME).propagate = False", f"propagate=False on the logger '{NAME}'"),
    "named_disabled": ("logging.getLogger(NAME).disabled = True", f"disabled=True on the logger '{NAME}'"),
    "root_handler_added": ("logging.getLogger().addHandler(HANDLER)", "adds the handler <NullHandler (NOTSET)> to "
                           "the root logger"),
    "root_handler_removed": ("logging.getLogger().removeHandler(OLD)",
                             "removes the handler <NullHandler (NOTSET)> from the root logger"),
    "root_handler_level": ("OLD.setLevel(logging.ERROR)", "sets the level or format of the handler "
                           "<NullHandler (ERROR)> of the root logger"),
    "root_handler_format": ('OLD.setFormatter(logging.Formatter("%(message)s"))', "the level or format of the "
                            "handler <NullHandler (NOTSET)> of the root logger"),
    "basic_config": ('logging.getLogger().handlers.clear()\nlogging.basicConfig(format="%(message)s")',
                     "adds the handler <StreamHandler"),
}


@pytest.mark.parametrize("body, said", LEFT_BODIES.values(), ids=LEFT_BODIES.keys())
def test_a_body_that_leaves_a_logger_changed_is_not_cached(shell: Shell, counter: Counter,
                                                           loggers_restored: logging.Handler, body: str,
                                                           said: str) -> None:
    _define(shell, counter, body, loggers_restored)
    warned = _said(shell, "setup()")
    assert len(warned) == 1 and said in warned[0] and "not cached" in warned[0], warned
    # Run again with the logger already as the first run left it: still not stored (a restarted kernel would be
    # served it, with the logger as it was).
    assert _said(shell, "setup()") == []
    assert counter.n == 2


KEPT_BODIES = {
    "named_logger_logs": 'LOG.info("loading")\nLOG.warning("loaded")',
    "named_logger_made": 'logging.getLogger(NAME + ".child").info("made by the call")',
    "level_put_back": "level = LOG.level\nLOG.setLevel(7)\nLOG.setLevel(level)",
    "handler_level_put_back": "OLD.setLevel(logging.ERROR)\nOLD.setLevel(logging.NOTSET)",
    "handler_put_back": "LOG.addHandler(HANDLER)\ntry:\n    LOG.warning('x')\nfinally:\n    LOG.removeHandler(HANDLER)",
}


@pytest.mark.parametrize("body", KEPT_BODIES.values(), ids=KEPT_BODIES.keys())
def test_a_body_that_leaves_its_loggers_as_they_were_is_cached(shell: Shell, counter: Counter,
                                                               loggers_restored: logging.Handler, body: str) -> None:
    _define(shell, counter, body, loggers_restored)
    assert _said(shell, "setup(); setup()") == []
    assert counter.n == 1


def test_a_body_whose_logging_call_adds_the_root_s_first_handler_is_cached(shell: Shell, counter: Counter,
                                                                           loggers_restored: logging.Handler) -> None:
    # logging.warning() gives a root logger with no handler the one basicConfig() makes: the next call would too
    logging.getLogger().handlers.clear()
    _define(shell, counter, 'logging.warning("loading")', loggers_restored)
    assert _said(shell, "setup(); setup()") == []
    assert counter.n == 1


def test_a_cell_that_leaves_a_logger_s_level_changed_is_not_cached(shell: Shell, counter: Counter,
                                                                   loggers_restored: logging.Handler) -> None:
    shell.ip.user_ns.update(counter=counter, NAME=NAME)
    shell.run("%load_ext notebook_memo")
    shell.run("import logging")
    cell = "%%memo\ncounter()\nlogging.getLogger(NAME).setLevel(9)\nx = 1"
    warned = _said(shell, cell)
    assert len(warned) == 1 and f"level=9 on the logger '{NAME}'" in warned[0], warned
    assert _said(shell, cell) == []
    assert counter.n == 2


# -- warnings sent to logging ----------------------------------------------------------------------------------

@pytest.fixture
def showwarning_restored() -> Iterator[None]:
    """warnings.showwarning as it was, after the test (logging.captureWarnings replaces it)."""
    shown = warnings.showwarning
    yield
    logging.captureWarnings(False)
    warnings.showwarning = shown


class Kept(logging.Handler):
    """Keeps the messages of the records it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_body_that_sends_warnings_to_logging_is_not_cached(shell: Shell, counter: Counter,
                                                             showwarning_restored: None) -> None:
    kept = Kept()
    logging.getLogger("py.warnings").addHandler(kept)  # where the warning about it goes, once the body ran
    try:
        shell.ip.user_ns.update(counter=counter)
        shell.run("import logging\nfrom notebook_memo import memo\n"
                  "@memo\ndef setup():\n    counter()\n    logging.captureWarnings(True)\n    return 1")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            shell.run("setup(); setup()")
    finally:
        logging.getLogger("py.warnings").removeHandler(kept)
    said = [text for text in kept.messages if "MemoWarning" in text]
    assert len(said) == 1 and "replaces warnings.showwarning" in said[0], kept.messages
    assert counter.n == 2


def test_a_body_that_sends_warnings_to_logging_and_back_is_cached(shell: Shell, counter: Counter,
                                                                  showwarning_restored: None) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run("import logging\nfrom notebook_memo import memo\n"
              "@memo\ndef setup():\n    counter()\n    logging.captureWarnings(True)\n"
              "    logging.captureWarnings(False)\n    return 1")
    assert _said(shell, "setup(); setup()") == []
    assert counter.n == 1


# -- the recursion limit ---------------------------------------------------------------------------------------

@pytest.fixture
def limit_restored() -> Iterator[int]:
    """The recursion limit (yielded), as it was after the test."""
    limit = sys.getrecursionlimit()
    yield limit
    sys.setrecursionlimit(limit)


def test_a_body_that_leaves_the_recursion_limit_raised_is_not_cached(shell: Shell, counter: Counter,
                                                                     limit_restored: int) -> None:
    shell.ip.user_ns.update(counter=counter, LIMIT=limit_restored + 777)
    shell.run("import sys\nfrom notebook_memo import memo\n"
              "@memo\ndef setup():\n    counter()\n    sys.setrecursionlimit(LIMIT)\n    return 1")
    warned = _said(shell, "setup()")
    assert len(warned) == 1 and f"recursion limit to {limit_restored + 777}" in warned[0], warned
    assert _said(shell, "setup()") == []
    assert counter.n == 2


class Meeting:
    """Orders two threads' bodies, outside every cache key: the first is in its body before the second starts, and
    both are in their bodies together; the first leaves first."""

    def __init__(self) -> None:
        self.first_in, self.second_out = threading.Event(), threading.Event()
        self.barrier = threading.Barrier(2, timeout=60)

    def meet(self, x: int) -> None:
        if x == 1:
            self.first_in.set()
        self.barrier.wait()
        if x == 2:
            self.second_out.wait(60)

    def __memo_key__(self) -> str:
        return "meeting"


def test_misses_running_in_two_threads_at_once_leave_no_recursion_limit_change(shell: Shell, counter: Counter,
                                                                               limit_restored: int) -> None:
    # Each raises the limit for its own frames while it runs; the first, leaving first, finds the second's raise
    # on top of its own and leaves both: it must not take that for a change of its body's.
    meeting = Meeting()
    shell.ip.user_ns.update(counter=counter, meeting=meeting)
    shell.run("""
        import threading
        from notebook_memo import memo

        @memo
        def work(x):
            counter()
            meeting.meet(x)
            return x * 2

        first, second = (threading.Thread(target=work, args=(x,)) for x in (1, 2))
        """)
    cell = "first.start(); meeting.first_in.wait(60); second.start(); first.join(); meeting.second_out.set()\n" \
           "second.join()"
    assert _said(shell, cell) == []
    assert _said(shell, "work(1), work(2)") == []
    assert counter.n == 2 and shell.run("work.cache_info().hits") == 2


# -- the file mode mask -----------------------------------------------------------------------------------------

@pytest.fixture
def mask_restored() -> Iterator[int]:
    """The file mode mask (yielded), as it was after the test."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield mask
    os.umask(mask)


def test_a_body_that_leaves_the_file_mode_mask_changed_is_not_cached(shell: Shell, counter: Counter,
                                                                     mask_restored: int, tmp_path: Path) -> None:
    shell.ip.user_ns.update(counter=counter, FILE=str(tmp_path / "made.txt"))
    shell.run("import os\nfrom notebook_memo import memo\n"
              "@memo\ndef setup():\n    counter()\n    os.umask(0o077)\n    return 1")
    warned = _said(shell, "setup()")
    assert len(warned) == 1 and "file mode mask to 0o77" in warned[0], warned
    assert _said(shell, "setup()") == []
    assert counter.n == 2
    # The mask our reading of it sets and puts back is the one the body left: a file made now gets it.
    shell.run("open(FILE, 'w').close()")
    assert os.stat(tmp_path / "made.txt").st_mode & 0o777 == 0o600


def test_a_body_that_puts_the_file_mode_mask_back_is_cached(shell: Shell, counter: Counter,
                                                             mask_restored: int, tmp_path: Path) -> None:
    shell.ip.user_ns.update(counter=counter, FILE=str(tmp_path / "private.txt"))
    shell.run("""
        import os
        from notebook_memo import memo

        @memo
        def write():
            counter()
            old = os.umask(0o077)
            try:
                with open(FILE, "w") as f:
                    f.write("secret")
            finally:
                os.umask(old)
            return 1
        """)
    assert _said(shell, "write(); write()") == []
    assert counter.n == 1 and os.umask(mask_restored) == mask_restored


LOGGERS_KERNEL = """
    import logging
    from notebook_memo import memo

    @memo
    def setup(level):
        logging.getLogger("nbm.kernel").setLevel(level)
        logging.basicConfig(format="%(name)s says %(message)s")
        return level

    setup(15)
    setup(15)
    OUT["level"] = logging.getLogger("nbm.kernel").level
    OUT["formats"] = [h.formatter._fmt for h in logging.getLogger().handlers]
    """


def test_after_a_restart_a_body_still_configures_its_loggers(cache_dir: Path) -> None:
    for seed in (1, 2):
        out = run_kernel([LOGGERS_KERNEL], cache_dir, seed=seed)
        assert out["level"] == 15 and out["formats"] == ["%(name)s says %(message)s"], out
        assert sum("not cached" in w for w in out["_warnings"]) == 1, out["_warnings"]
