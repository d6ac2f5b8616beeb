"""Process-wide settings that no key holds but that change what later code does: display options, floating-point
error handling, grad mode, plotting defaults, warnings filters, loggers' levels and handlers, the import path, the
file mode mask. Read
before and after a miss, never on a hit: a body that leaves one changed makes a state a hit would not make again."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Container
from typing import Any

__all__ = ()

# One setting: (the call that sets it, its option), and its value.
Entry = tuple[tuple[str, str], Any]

# Names of these settings in a run's table of settings (see _conditions._settings).
NUMPY = "numpy's print options and error handling"
TORCH = "torch's modes, print options and threads"
MATPLOTLIB = "matplotlib's rcParams"
WARNINGS = "warnings filters and warnings.showwarning"
LOGGING = "the root logger's level and handlers"
LOGGERS = "named loggers' levels, handlers and propagation"
IMPORT_PATH = "sys.path"
SOCKET = "socket's default timeout"
UMASK = "the file mode mask"

# rcParams entries matplotlib sets itself: the backend is resolved by the first figure made.
_RC_SKIPPED = frozenset({"backend"})
_TORCH_PRINT_OPTIONS = ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")


def _read(getter: Callable[..., Any], *args: Any) -> Any:
    """Return a setting; "?" where this version lacks it or reading it raised."""
    try:
        return getter(*args)
    except Exception:
        return "?"


def _numpy() -> tuple[Entry, ...]:
    np = sys.modules["numpy"]
    # NumPy 2 keeps both in context variables, whose objects change with every set_printoptions and seterr (or
    # their ``with`` forms): the print options are that dict, and the error handling is read again only then.
    printing = getattr(sys.modules.get("numpy._core.printoptions"), "format_options", None)
    options = printing.get() if printing is not None else _read(np.get_printoptions)
    holder = getattr(sys.modules.get("numpy._core._ufunc_config"), "_extobj_contextvar", None)
    state = holder.get() if holder is not None else None
    if state is None or state is not _numpy_errors[0]:
        errors = _read(np.geterr)
        handling = (*((("np.seterr", kind), mode) for kind, mode in
                      sorted(errors.items() if isinstance(errors, dict) else ())),
                    (("np.seterrcall", "func"), _read(np.geterrcall)))
        if state is not None:
            _numpy_errors[:] = [state, handling]  # held, so no later state object can take its identity
    else:
        handling = _numpy_errors[1]
    return (*((("np.set_printoptions", name), value) for name, value in
              (options.items() if isinstance(options, dict) else ())), *handling)


_numpy_errors: list[Any] = [None, ()]  # NumPy's error state object last read, and its entries


def _torch() -> tuple[Entry, ...]:
    torch = sys.modules["torch"]
    entries: list[Entry] = [
        (("torch.set_grad_enabled", "mode"), _read(torch.is_grad_enabled)),
        (("torch.inference_mode", "mode"), _read(torch.is_inference_mode_enabled)),
        (("torch.autograd.set_detect_anomaly", "mode"), _read(torch.is_anomaly_enabled)),
        (("torch.set_num_threads", "threads"), _read(torch.get_num_threads)),
    ]
    for device in ("cpu", "cuda"):
        entries.append((("torch.set_autocast_enabled", device), _read(torch.is_autocast_enabled, device)))
    # The default device: torch.set_default_device enters a function mode; asked only where one is entered (slow)
    context = getattr(getattr(torch, "_GLOBAL_DEVICE_CONTEXT", None), "device_context", None)
    if context is not None or _read(torch._C._len_torch_function_stack):
        entries.append((("torch.set_default_device", "device"), str(_read(torch.get_default_device))))
    options = getattr(getattr(torch, "_tensor_str", None), "PRINT_OPTS", None)
    entries += [(("torch.set_printoptions", name), getattr(options, name, None)) for name in _TORCH_PRINT_OPTIONS]
    return tuple(entries)


def _matplotlib() -> tuple[Entry, ...]:
    params = getattr(sys.modules["matplotlib"], "rcParams", None)
    if not isinstance(params, dict):
        return ()
    # Its values alone, as stored (dict.values: RcParams' own lookup checks and resolves each entry), with their names
    # kept apart: some 300 of them, read twice on every miss.
    if _rc_names[0] is not params or len(_rc_names[1]) != len(params):
        _rc_names[:] = [params, tuple(dict.keys(params))]
    values = list(dict.values(params))
    for name in _RC_SKIPPED:
        if name in params:
            values[_rc_names[1].index(name)] = None
    return ((("matplotlib.rcParams", ""), tuple(values)),)


_rc_names: list[Any] = [None, ()]  # the rcParams last read, and the names of its entries in order


def _warnings() -> tuple[Entry, ...]:
    warnings = sys.modules["warnings"]
    # And the function that shows them, which logging.captureWarnings replaces to send them to a logger.
    return ((("warnings.filterwarnings", "filters"), tuple(getattr(warnings, "filters", ()))),
            (("warnings.showwarning", "function"), getattr(warnings, "showwarning", None)))


def _logging() -> tuple[Entry, ...]:
    root = logging.root
    handlers = tuple(map(_handler, root.handlers))
    if len(handlers) == 1 and _is_implicit(root.handlers[0]):
        # logging.info() and its kind add this one to a root logger that has none, on first use: any later call
        # adds it again, so it is no setting of the body's.
        handlers = ()
    return ((("logging.getLogger", ""), (root.level, True, False, handlers)),
            (("logging.disable", "level"), root.manager.disable))


def _handler(handler: logging.Handler) -> tuple[logging.Handler, int, Any]:
    """Return a handler, its level and its formatter: what decides which records it shows, and how."""
    return handler, handler.level, handler.formatter


def _is_implicit(handler: logging.Handler) -> bool:
    """Return True when ``handler`` is the one ``logging.basicConfig()`` makes given nothing: a plain StreamHandler
    with the basic format."""
    formatter = handler.formatter
    return type(handler) is logging.StreamHandler and not handler.level and not handler.filters \
        and formatter is not None and formatter._fmt == logging.BASIC_FORMAT and formatter.datefmt is None


def _loggers() -> tuple[Entry, ...]:
    # Every logger but those as getLogger makes them (most: a library's module makes one each as it loads), read
    # only where the code names a logger's setter: some 150 loggers once torch is loaded, too many to read twice on
    # every miss.
    return tuple((("logging.getLogger", logger.name), (logger.level, logger.propagate, logger.disabled,
                                                       tuple(map(_handler, logger.handlers))))
                 for logger in list(dict.values(logging.root.manager.loggerDict)) if isinstance(logger, logging.Logger)
                 and (logger.level or logger.handlers or not logger.propagate or logger.disabled))


# A logger as getLogger makes it: (its level, whether it propagates, whether it is disabled, its handlers, each with
# its level and formatter).
_DEFAULT_LOGGER = (0, True, False, ())


def _import_path() -> tuple[Entry, ...]:
    return ((("sys.path", "folders"), tuple(sys.path)),)


def _socket() -> tuple[Entry, ...]:
    return ((("socket.setdefaulttimeout", "timeout"), _read(sys.modules["socket"].getdefaulttimeout)),)


def _umask() -> tuple[Entry, ...]:
    # Read by setting it, to the mask last read: a file another thread makes in between gets the mask it would get
    # anyway, unless the mask changed since.
    guess = _mask[0]
    mask = os.umask(guess)
    if mask != guess:
        os.umask(mask)
        _mask[0] = mask
    return ((("os.umask", "mask"), mask),)


def _first_mask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_mask = [_first_mask()]  # the file mode mask last read: read as this module loads, before a body's threads run


# Per setting: the module that must be loaded for it to be read, and whether it is read only where the code uses that
# library (its options are set through its own functions) or wherever it is loaded (set through any library's code,
# or where the code's libraries are not resolved).
_PROBES: dict[str, tuple[str, bool, Callable[[], tuple[Entry, ...]]]] = {
    NUMPY: ("numpy", True, _numpy), TORCH: ("torch", True, _torch), MATPLOTLIB: ("matplotlib", False, _matplotlib),
    WARNINGS: ("warnings", False, _warnings), LOGGING: ("logging", False, _logging),
    LOGGERS: ("logging", True, _loggers),
    IMPORT_PATH: ("sys", False, _import_path), SOCKET: ("socket", False, _socket), UMASK: ("os", False, _umask),
}


# The names through which code changes a logger besides its level: its handlers (and theirs, and their formats),
# whether it propagates, whether it is disabled (as logging.config disables the loggers it does not name).
_LOGGER_SETTERS = (("addHandler",), ("removeHandler",), ("handlers",), ("setFormatter",), ("propagate",),
                   ("disabled",), ("dictConfig",), ("fileConfig",))


# Per setting, the names through which code sets it, each a group that one piece of code names whole
# (``sys.path.append``: sys and path, as path alone is mostly os.path; ``plt.style.use``, as a DataFrame has a
# style): the functions, and the objects changed in place.
_SETTERS: dict[str, tuple[tuple[str, ...], ...]] = {
    NUMPY: (("set_printoptions",), ("seterr",), ("seterrcall",), ("set_string_function",)),
    TORCH: (("set_grad_enabled",), ("_set_grad_enabled",), ("inference_mode",), ("set_detect_anomaly",),
            ("set_num_threads",), ("set_autocast_enabled",), ("set_default_device",), ("set_printoptions",)),
    MATPLOTLIB: (("rcParams",), ("rc",), ("rcdefaults",), ("rc_file",), ("rc_file_defaults",), ("style", "use"),
                 ("set_theme",), ("set_style",), ("set_context",)),  # the last three: seaborn's
    WARNINGS: (("filterwarnings",), ("simplefilter",), ("resetwarnings",), ("warnings", "filters"),
               ("captureWarnings",), ("showwarning",)),
    LOGGING: (("basicConfig",), ("setLevel",), ("logging", "disable"), *_LOGGER_SETTERS),
    LOGGERS: (("setLevel",), *_LOGGER_SETTERS),
    IMPORT_PATH: (("sys", "path"),),
    SOCKET: (("setdefaulttimeout",),),
    UMASK: (("umask",),),
}


def names_setter(setting: str, names: Container[str]) -> bool:
    """Return True when code that uses ``names`` (its globals and attributes) names a setter of ``setting`` (one of
    this module's settings): ``np.set_printoptions`` for numpy's print options."""
    return any(all(name in names for name in group) for group in _SETTERS.get(setting, ()))


def left_probes(used: Container[str] | None) -> list[tuple[str, Callable[[], tuple[Entry, ...]]]]:
    """Return the readers of these settings, by setting, of the libraries loaded now: those bound to a library only
    where it is in ``used`` (the libraries a body's code uses; "logging" where it names a logger's setter), all where
    ``used`` is None."""
    modules = sys.modules
    return [(name, probe) for name, (module, bound, probe) in _PROBES.items()
            if module in modules and (not bound or used is None or module in used)]


def names_logger_setter(names: Container[str]) -> bool:
    """Return True when code that uses ``names`` names a setter of a logger's level, handlers or propagation."""
    return names_setter(LOGGERS, names)


def left_change(before: tuple[Entry, ...], after: tuple[Entry, ...]) -> str:
    """Return the first difference between two readings of a setting, in words (``sets precision=2 with
    np.set_printoptions``, ``adds the warnings filter ('ignore', DeprecationWarning)``)."""
    was, now = dict(before), dict(after)
    call, option = next((key for key, value in after if was.get(key, _UNSET) != value), None) or \
        next((key for key in was if key not in now), ("?", "?"))  # one read only before (torch's default device)
    value = now.get((call, option))
    if call == "warnings.filterwarnings":
        return _filters_change(was.get((call, option), ()), value or ())
    if call == "matplotlib.rcParams":
        names = _rc_names[1]
        changed = next((name for name, old, new in zip(names, was.get((call, option), ()), value or ())
                        if old != new), None)
        return f"sets {changed}={dict.get(_rc_names[0], changed)!r} in matplotlib.rcParams" if changed else \
            "changes matplotlib.rcParams"
    if call == "logging.getLogger":
        return _logger_change(option, was.get((call, option), _DEFAULT_LOGGER),
                              now.get((call, option), _DEFAULT_LOGGER))
    if call == "warnings.showwarning":
        return f"replaces warnings.showwarning with {getattr(value, '__qualname__', value)!r} (logging.captureWarnings)"
    if call == "os.umask":
        return f"sets the file mode mask to {value:#o} with os.umask" if isinstance(value, int) else \
            "changes the file mode mask (os.umask)"
    if call == "sys.path":
        added, removed = _added(was.get((call, option), ()), value or ())
        return f"adds {added[0]!r} to sys.path" if added else \
            f"removes {removed[0]!r} from sys.path" if removed else "reorders sys.path"
    return f"sets {option}={value!r} with {call}"


def _logger_change(name: str, before: tuple[Any, ...], after: tuple[Any, ...]) -> str:
    """Return how a logger's state changed, in words (``sets level=10 on the logger 'train' (setLevel)``)."""
    logger = f"the logger {name!r}" if name else "the root logger"
    level, propagate, disabled, handlers = after
    if level != before[0]:
        return f"sets level={level!r} on {logger} (setLevel)"
    if propagate != before[1]:
        return f"sets propagate={propagate!r} on {logger}"
    if disabled != before[2]:
        return f"sets disabled={disabled!r} on {logger} (logging.config disables the loggers it does not name)"
    added, removed = _added(before[3], handlers)
    kept = {id(entry[0]) for entry in removed}
    changed = next((entry[0] for entry in added if id(entry[0]) in kept), None)
    if changed is not None:
        return f"sets the level or format of the handler {changed!r} of {logger} (setLevel, setFormatter)"
    if added:
        return f"adds the handler {added[0][0]!r} to {logger} (addHandler, logging.basicConfig)"
    if removed:
        return f"removes the handler {removed[0][0]!r} from {logger} (removeHandler)"
    return f"reorders the handlers of {logger}"


def _filters_change(before: tuple[Any, ...], after: tuple[Any, ...]) -> str:
    added, removed = _added(before, after)
    if added:
        return f"adds the warnings filter {_filter(added[0])} (warnings.simplefilter, warnings.filterwarnings)"
    if removed:
        return f"removes the warnings filter {_filter(removed[0])} (warnings.resetwarnings)"
    moved = next((f for f, was in zip(after, before) if f != was), None)
    return f"puts the warnings filter {_filter(moved)} first (warnings.simplefilter, warnings.filterwarnings)"


def _added(before: tuple[Any, ...], after: tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    """Return the entries ``after`` holds more of than ``before`` (one added again included), and those it holds
    fewer of."""
    left = list(before)
    added = []
    for entry in after:
        if entry in left:
            left.remove(entry)
        else:
            added.append(entry)
    return added, left


def _filter(entry: Any) -> str:
    """Return a warnings filter as its call names it: ``('ignore', DeprecationWarning, 'numpy')``."""
    if not isinstance(entry, tuple) or len(entry) != 5:
        return repr(entry)
    action, message, category, module, _ = entry
    parts = [repr(action), getattr(category, "__name__", repr(category))]
    parts += [repr(getattr(pattern, "pattern", pattern)) for pattern in (message, module) if pattern]
    return f"({', '.join(parts)})"


_UNSET = object()
