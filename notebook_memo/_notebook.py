"""Which notebook this kernel runs, as the front end tells it (Jupyter, VS Code), and which of its names are IPython's.

Entries of notebook-defined functions and cells record it, so that cleaning up in one
notebook never deletes what another notebook in the same folder stored under the same name.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import xxhash

__all__ = ()

# Jupyter's kernel puts the notebook's path in the user namespace as ``__session__`` (from the
# server's JPY_SESSION_NAME); VS Code puts it in ``__vsc_ipynb_file__``.
_NAMESPACE_NAMES = ("__session__", "__vsc_ipynb_file__")
ENV_SESSION = "JPY_SESSION_NAME"
# A relative path is the kernel's: it is read from the folder the kernel started in, so that a
# later %cd (os.chdir) in the notebook does not make the same notebook another one.
_START_DIR = os.getcwd()


# IPython's history variables in the notebook's namespace: rebound by every cell (``_i5``, ``_5``), or holding every
# cell's input and output (``In``, ``Out``).
_HISTORY = frozenset({"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_oh", "_ih", "_dh", "_exit_code"})


def is_history(name: str) -> bool:
    """Return True for IPython's history variables (``_``, ``Out``, ``_5``, ``_i5``...)."""
    return name in _HISTORY or (name.startswith("_i") and name[2:].isdigit()) \
        or (name.startswith("_") and name[1:].isdigit())


def running_shell() -> Any:
    """Return the IPython shell running in this process, or None (a script, no shell)."""
    ipython = sys.modules.get("IPython")  # never imported here: a script does without it
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if callable(get_ipython) else None


def shell_namespace() -> dict[str, Any] | None:
    """Return the namespace of the notebook IPython runs in this process, or None (a script, no shell)."""
    namespace = getattr(running_shell(), "user_ns", None)
    return namespace if isinstance(namespace, dict) else None


def _given() -> list[str]:
    main = sys.modules.get("__main__")
    found = [value for name in _NAMESPACE_NAMES for value in [getattr(main, name, None)]
             if isinstance(value, str) and value]
    env = os.environ.get(ENV_SESSION)
    if env:
        found.append(env)
    return found


def notebook_paths() -> set[str]:
    """Return every notebook file the front end names for this kernel (real paths)."""
    return {_real(path) for path in _given()}


def current_notebook() -> str | None:
    """Return the real path of the notebook this kernel runs, or None (plain IPython, a script)."""
    given = _given()
    return _real(given[0]) if given else None


def _real(path: str) -> str:
    return os.path.realpath(os.path.join(_START_DIR, path))


def short_name(path: str | None) -> str:
    """Return a notebook's path for a table: relative to the working folder when inside it."""
    if not path:
        return ""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def owner_tag(fid: str, notebook: str | None) -> str:
    """Return the name a function's hit counts are kept under: per notebook for notebook code."""
    return fid if not notebook else f"{fid}@{xxhash.xxh3_64_hexdigest(notebook.encode())}"
