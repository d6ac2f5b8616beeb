"""Running a cell's code in the shell, and capturing and replaying what it shows."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ._widgets import replayable, static_bundle

__all__ = ()


# -- capturing and replaying output ---------------------------------------------------------


class _Tee:
    """A text stream that records what is written and passes it on, while its capture lasts."""

    def __init__(self, stream: Any, name: str, events: list[tuple[Any, ...]]) -> None:
        self._stream = stream
        self._name = name
        self._events: list[tuple[Any, ...]] | None = events
        self.quiet = False  # set while a display is published: its text is recorded as the display

    def finish(self) -> None:
        """Stop recording: what is written from now on belongs to whichever cell is running."""
        self._events = None

    def write(self, text: str) -> int:
        if self._events is None:
            # Held past its cell (a handler of a logger logging does not list): the capture running now,
            # if it shows the same stream, records it, as it would have had the holder kept that stream.
            current = sys.stdout if self._name == "stdout" else sys.stderr
            if isinstance(current, _Tee) and current is not self and current._stream is self._stream:
                return current.write(text)
            return int(self._stream.write(text) or len(text))
        if text and not self.quiet:
            if self._events and self._events[-1][0] == self._name:
                self._events[-1] = (self._name, self._events[-1][1] + text)
            else:
                self._events.append((self._name, text))
        return int(self._stream.write(text) or len(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def capture(shell: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Record stdout, stderr and display outputs, in order, while still showing them.

    Widgets displayed are recorded as they are when the cell ends: their models die with the kernel.
    """
    events: list[tuple[Any, ...]] = []
    out, err = sys.stdout, sys.stderr
    publisher = shell.display_pub
    original = publisher.publish

    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        events.append(("display", data, metadata or {}))
        # A shell with no frontend prints the display's text to stdout: shown, but not recorded twice.
        quiet = [tee.quiet for tee in tees]
        for tee in tees:
            tee.quiet = True
        try:
            return original(data, metadata, *args, **kwargs)
        finally:
            for tee, was in zip(tees, quiet):
                tee.quiet = was

    sys.stdout, sys.stderr = tees = _Tee(out, "stdout", events), _Tee(err, "stderr", events)
    # Logging handlers hold the stream they were made with: those writing to the notebook's are recorded too.
    handlers = [(h, h.stream) for h in _stream_handlers() if h.stream is out or h.stream is err]
    for handler, stream in handlers:
        handler.stream = tees[0] if stream is out else tees[1]
    publisher.publish = publish
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
        publisher.publish = original


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
        if event[0] == "display":
            data = static_bundle(event[1])
            if data is None:
                continue  # a widget closed before the cell ended shows nothing
            event = ("display", data, event[2])
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
        elif event[0] == "display":
            data = replayable(event[1])
            if data is not None:
                shell.display_pub.publish(data=data, metadata=event[2])
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


def execute(shell: Any, tree: ast.Module, filename: str) -> Any:
    """Run a parsed cell in the shell's namespace; return the last expression's value or None."""
    __tracebackhide__ = True  # an error raised in the cell shows the cell's frames, not ours
    body = list(tree.body)
    last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
    assert last is None or isinstance(last, ast.Expr)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    namespace = shell.user_ns
    if body:
        code = compile(ast.Module(body=body, type_ignores=[]), filename, "exec", flags=flags)
        result = eval(code, shell.user_global_ns, namespace)
        if asyncio.iscoroutine(result):
            _run_coroutine(result)
    if last is None:
        return None
    code = compile(ast.Expression(body=last.value), filename, "eval", flags=flags)
    value = eval(code, shell.user_global_ns, namespace)
    return _run_coroutine(value) if asyncio.iscoroutine(value) else value
