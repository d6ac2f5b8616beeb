"""Running a cell's code in the shell, and capturing and replaying what it shows."""

from __future__ import annotations
import __future__ as future

import ast
import asyncio
import contextlib
import functools
import logging
import operator
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ._widgets import in_output_widget, replayable, static_bundle

__all__ = ()


# -- capturing and replaying output ---------------------------------------------------------


class _Recording:
    """What a cell shows, kept as the notebook shows it when the cell ends: a display updated in place holds
    its last data, and what ``clear_output`` cleared is gone (a progress loop keeps its last frame)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._clear_next = False  # clear_output(wait=True): the next output clears what came before

    def _adding(self) -> None:
        if self._clear_next:
            self._clear_next = False
            self.clear()

    def text(self, name: str, text: str) -> None:
        self._adding()
        events = self.events
        if events and events[-1][0] == name:
            events[-1] = (name, events[-1][1] + text)
        else:
            events.append((name, text))

    def display(self, data: Any, metadata: Any, transient: Any, update: bool) -> None:
        """Record a display; an update replaces the data of the displays with its id, wherever they are."""
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        if not update:
            self._adding()
            self.events.append(("display", data, metadata, dict(transient)) if display_id is not None
                               else ("display", data, metadata))
            return
        if display_id is None:
            return  # an update naming no display changes nothing
        found = False
        for index, event in enumerate(self.events):
            if event[0] in ("display", "update") and len(event) > 3 and event[3].get("display_id") == display_id:
                self.events[index] = (event[0], data, metadata, event[3])
                found = True
        if not found:  # a display an earlier cell showed: a hit updates it too
            self.events.append(("update", data, metadata, dict(transient)))

    def clear(self, wait: bool = False) -> None:
        """Forget what the cell showed so far (with ``wait``, once it shows something else)."""
        if wait:
            self._clear_next = True
            return
        self._clear_next = False
        self.events[:] = [event for event in self.events if event[0] == "update"]  # other cells' displays


class _Tee:
    """A text stream that records what is written and passes it on, while its capture lasts."""

    def __init__(self, stream: Any, name: str, recording: _Recording) -> None:
        self._stream = stream
        self._name = name
        self._recording: _Recording | None = recording
        self.quiet = False  # set while a display is published: its text is recorded as the display

    def finish(self) -> None:
        """Stop recording: what is written from now on belongs to whichever cell is running."""
        self._recording = None

    def write(self, text: str) -> int:
        recording = self._recording
        if recording is None:
            # Held past its cell (a handler of a logger logging does not list): the capture running now,
            # if it shows the same stream, records it, as it would have had the holder kept that stream.
            current = sys.stdout if self._name == "stdout" else sys.stderr
            if isinstance(current, _Tee) and current is not self and current._stream is self._stream:
                return current.write(text)
        elif text and not self.quiet:
            recording.text(self._name, text)
        return int(self._stream.write(text) or len(text))

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line through ``write``: the stream's own writelines would pass them on unrecorded."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def capture(shell: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Record stdout, stderr and display outputs, in order, while still showing them.

    Widgets displayed are recorded as they are when the cell ends: their models die with the kernel.
    """
    recording = _Recording()
    events = recording.events
    out, err = sys.stdout, sys.stderr
    publisher = shell.display_pub
    original, original_clear = publisher.publish, publisher.clear_output

    @contextlib.contextmanager
    def quiet() -> Iterator[None]:
        # A shell with no frontend prints a display's text (and a clear's escape codes) to the streams:
        # shown, but recorded as the display or the clear only.
        was = [tee.quiet for tee in tees]
        for tee in tees:
            tee.quiet = True
        try:
            yield
        finally:
            for tee, before in zip(tees, was):
                tee.quiet = before

    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        recording.display(data, metadata or {}, kwargs.get("transient"), bool(kwargs.get("update")))
        with quiet():
            return original(data, metadata, *args, **kwargs)

    def clear_output(wait: bool = False) -> Any:
        if not in_output_widget():  # inside `with out:` it clears that widget, not the cell
            recording.clear(wait)
        with quiet():
            return original_clear(wait)

    sys.stdout, sys.stderr = tees = _Tee(out, "stdout", recording), _Tee(err, "stderr", recording)
    # Logging handlers hold the stream they were made with: those writing to the notebook's are recorded too.
    handlers = [(h, h.stream) for h in _stream_handlers() if h.stream is out or h.stream is err]
    for handler, stream in handlers:
        handler.stream = tees[0] if stream is out else tees[1]
    publisher.publish, publisher.clear_output = publish, clear_output
    try:
        yield events
        _flush_inline_figures()
        events[:] = _without_live_widgets(events)
    finally:
        sys.stdout, sys.stderr = out, err
        for tee in tees:
            tee.finish()
        for handler, stream in handlers:
            if isinstance(handler.stream, _Tee):
                handler.stream = stream
        # Handlers the cell made (logging.basicConfig(), StreamHandler(sys.stdout)) got the tees: the streams.
        for handler in _stream_handlers():
            if handler.stream is tees[0] or handler.stream is tees[1]:
                handler.stream = out if handler.stream is tees[0] else err
        publisher.publish, publisher.clear_output = original, original_clear


def _stream_handlers() -> list[logging.StreamHandler]:  # type: ignore[type-arg]
    """Return the logging handlers that write to a stream, of every logger made so far."""
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    found = {id(h): h for logger in loggers for h in logger.handlers
             if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)}
    return list(found.values())


def _without_live_widgets(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    kept: list[tuple[Any, ...]] = []
    for event in events:
        if event[0] in ("display", "update"):
            data = static_bundle(event[1])
            if data is None:
                continue  # a widget closed before the cell ended shows nothing
            event = (event[0], data, *event[2:])
        kept.append(event)
    return kept


def _flush_inline_figures() -> None:
    """Show figures the inline backend would show after the cell, inside the capture."""
    module = sys.modules.get("matplotlib_inline.backend_inline")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if module is None or pyplot is None:
        return
    if "inline" in str(pyplot.get_backend()).lower():
        module.flush_figures()


def replay(shell: Any, events: list[tuple[Any, ...]]) -> None:
    """Show recorded outputs again, in their order."""
    for event in events:
        if event[0] == "stdout":
            sys.stdout.write(event[1])
        elif event[0] == "stderr":
            sys.stderr.write(event[1])
        elif event[0] in ("display", "update"):
            data = replayable(event[1])
            if data is None:
                continue
            # With its display id, so that an update (a later cell's, or one replayed) finds it.
            extra: dict[str, Any] = {"transient": event[3]} if len(event) > 3 else {}
            if event[0] == "update":
                extra["update"] = True
            shell.display_pub.publish(data=data, metadata=event[2], **extra)
    sys.stdout.flush()


# -- running a cell ---------------------------------------------------------------------------


def _run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        from IPython.core.async_helpers import get_asyncio_loop

        return get_asyncio_loop().run_until_complete(coro)
    box: dict[str, Any] = {}

    def target() -> None:  # the kernel's own loop is busy running this cell
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="notebook_memo-await")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


_FUTURE_FLAGS = functools.reduce(operator.or_, (getattr(future, name).compiler_flag
                                                for name in future.all_feature_names), 0)


def compile_flags(shell: Any) -> int:
    """Return the flags a cell's code compiles with: top-level await, and the ``__future__`` imports of
    earlier cells, as IPython compiles its own cells (never this module's, which compile() would inherit)."""
    return ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | (getattr(getattr(shell, "compile", None), "flags", 0) & _FUTURE_FLAGS)


def execute(shell: Any, tree: ast.Module, filename: str) -> Any:
    """Run a parsed cell in the shell's namespace; return the last expression's value or None."""
    __tracebackhide__ = True  # an error raised in the cell shows the cell's frames, not ours
    body = list(tree.body)
    last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
    assert last is None or isinstance(last, ast.Expr)
    flags = compile_flags(shell)
    namespace = shell.user_ns
    if body:
        code = compile(ast.Module(body=body, type_ignores=[]), filename, "exec", flags=flags, dont_inherit=True)
        result = eval(code, shell.user_global_ns, namespace)
        if asyncio.iscoroutine(result):
            _run_coroutine(result)
    if last is None:
        return None
    code = compile(ast.Expression(body=last.value), filename, "eval", flags=flags, dont_inherit=True)
    value = eval(code, shell.user_global_ns, namespace)
    return _run_coroutine(value) if asyncio.iscoroutine(value) else value
