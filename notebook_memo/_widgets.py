"""Widgets in a cell's captured output, kept as static output of their final state.

A widget display is only a reference to a model living in the kernel that showed it; replayed in
another kernel it reads "Error displaying widget: model not found". So when a ``%%memo`` cell ends,
each widget it displayed (a tqdm bar, a slider, a box of them) is rendered as it is then, as text
and HTML, and that is what the cache keeps.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ()

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_TAG = re.compile(r"<[^>]*>")
_BAR_WIDTH = 10
_DEPTH = 20  # boxes nest; a deeper tree is shown cut off rather than walked without end


def _live_widgets() -> Mapping[str, Any] | None:
    """The kernel's widgets by model id, or None if ipywidgets was never imported."""
    module = sys.modules.get("ipywidgets.widgets.widget")
    if module is None:
        return None
    # ipywidgets 8 keeps them in a module dict; 7 in Widget.widgets (deprecated, and warning, in 8).
    found = getattr(module, "_instances", None)
    if found is None:
        found = getattr(getattr(module, "Widget", None), "widgets", None)
    return found if isinstance(found, Mapping) else None


def in_output_widget() -> bool:
    """Return True inside ``with out:`` of an ipywidgets ``Output``: what is shown now goes into it."""
    widgets = _live_widgets()
    if not widgets:
        return False
    return any(isinstance(getattr(w, "msg_id", None), str) and w.msg_id for w in list(widgets.values()))


def static_bundle(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return a display bundle without widget views: the widget's state now, as text and HTML.

    None for a widget closed since (Jupyter stops showing those). A bundle with no widget comes
    back unchanged.
    """
    view = data.get(WIDGET_VIEW)
    if view is None:
        return dict(data)
    rest = {mime: value for mime, value in data.items() if mime != WIDGET_VIEW}
    widgets = _live_widgets()
    model_id = view.get("model_id") if isinstance(view, Mapping) else None
    if widgets is None or not isinstance(model_id, str):
        return rest or None  # cannot look the widget up: what it showed when displayed
    widget = widgets.get(model_id)
    if widget is None:
        return None
    try:
        text, markup = _render(widget, 0)
    except Exception:  # a widget of a library we do not know: what it showed when displayed
        return rest or None
    return {**rest, "text/plain": text, "text/html": markup}


def replayable(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return a stored bundle without widget views, whose models are gone; None if nothing is left."""
    rest = {mime: value for mime, value in data.items() if mime != WIDGET_VIEW}
    return rest or None


def _render(widget: Any, depth: int) -> tuple[str, str]:
    """Return (text, HTML) showing a widget's current state."""
    if depth > _DEPTH:
        return "...", "&hellip;"
    children = getattr(widget, "children", None)
    if isinstance(children, (list, tuple)):
        parts = [_render(child, depth + 1) for child in children]
        vertical = "VBox" in type(widget).__name__ or "GridBox" in type(widget).__name__
        text = ("\n" if vertical else " ").join(t.strip() for t, _ in parts if t.strip())
        direction = "column" if vertical else "row"
        inner = "".join(f"<div>{m}</div>" for _, m in parts)
        return text, f'<div style="display:flex;flex-direction:{direction};align-items:center;gap:0.5em">{inner}</div>'
    label = str(getattr(widget, "description", "") or "")
    prefix = (label + " ") if label else ""
    value = getattr(widget, "value", None)
    if "Progress" in type(widget).__name__ and isinstance(value, (int, float)):
        low, high = float(getattr(widget, "min", 0) or 0), float(getattr(widget, "max", 100) or 0)
        fraction = min(max((value - low) / (high - low), 0.0), 1.0) if high > low else 1.0
        filled = round(fraction * _BAR_WIDTH)
        bar = "|" + "█" * filled + " " * (_BAR_WIDTH - filled) + "|"
        return prefix + bar, f'{html.escape(prefix)}<progress value="{value - low}" max="{high - low}"></progress>'
    if "HTML" in type(widget).__name__ and isinstance(value, str):
        return prefix + html.unescape(_TAG.sub("", value)), html.escape(prefix) + value
    outputs = getattr(widget, "outputs", None)
    if isinstance(outputs, (list, tuple)):  # an Output widget: what was printed or displayed into it
        text = "".join(_output_text(o) for o in outputs)
        return text, f"<pre>{html.escape(text)}</pre>"
    if value is None:
        shown = label or f"[{type(widget).__name__}]"
        return shown, html.escape(shown)
    text = prefix + str(value)
    return text, html.escape(text)


def _output_text(output: Any) -> str:
    if not isinstance(output, Mapping):
        return ""
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    data = output.get("data")
    return str(data.get("text/plain", "")) + "\n" if isinstance(data, Mapping) else ""
