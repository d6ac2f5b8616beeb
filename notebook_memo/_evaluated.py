"""The names a text evaluated in its caller's scope reads: ``df.query("x > @limit")``, ``pd.eval("a + b")``.

pandas' ``DataFrame.query`` and ``DataFrame.eval`` look each ``@name`` up among the calling frame's
variables; ``pandas.eval`` and ``numexpr.evaluate`` look up every name of the text there. Such a
read appears in the code only as a string, so the code and bytecode analyses ask here.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import keyword
import re
import sys
import types
from typing import Any

from ._fingerprint import is_user_code

__all__ = ()

AT_NAMES = frozenset({"query", "eval"})  # methods whose text reads the caller's @names
# (receiver, function) whose text reads every name it holds from the caller's scope
EVERY_NAME = frozenset({("pd", "eval"), ("pandas", "eval"), ("ne", "evaluate"), ("numexpr", "evaluate")})
# The functions behind those spellings, by module and name: known under any name they are reached by.
_EVERY_NAME_FUNCTIONS = frozenset({("pandas", "eval"), ("numexpr", "evaluate")})
# Where the classes live whose ``query``/``eval`` methods evaluate a text in their caller's scope: pandas' DataFrame
# (and its subclasses: geopandas), and the frames made to mirror it (modin, dask, cuDF, pandas on Spark).
_FRAME_LIBRARIES = frozenset({"pandas", "modin", "dask", "dask_cudf", "cudf", "pyspark"})
# Builtins that read their caller's namespace, whatever name calls them (``bi.eval``, ``ev = eval``).
NAMESPACE_READERS = ("eval", "exec", "globals", "vars", "locals", "dir")

# Quoted parts (strings, `column names`) are skipped; a name after a dot is an attribute, not a read.
_TOKEN = re.compile(r"""(?P<quoted>'(?:\\.|[^'\\])*'?|"(?:\\.|[^"\\])*"?|`[^`]*`?)"""
                    r"""|(?P<at>@\s*)?(?P<name>[^\W\d]\w*)|(?P<number>\d[\w.]*)|(?P<dot>\.)|\S""")


def evaluates_text(receiver: str | None, attribute: str) -> bool | None:
    """Return None when ``receiver.attribute(text)`` evaluates no text in its caller's scope, else
    whether every name of the text is read (``pd.eval``) rather than its ``@names`` (``df.query``)."""
    if (receiver, attribute) in EVERY_NAME:
        return True
    return False if attribute in AT_NAMES else None


def evaluates_on(receiver: Any, attribute: str) -> bool:
    """Return False when ``receiver.attribute(text)``, ``receiver`` being an object the code's name is known to
    hold, is known to evaluate no text in its caller's scope: a module's function other than ``pandas.eval`` and
    ``numexpr.evaluate``, or a method a library other than the data frame ones defines (a scikit-learn
    ``KDTree.query``, a model's ``eval``) on a class deriving from no data frame. True for anything else: a
    DataFrame's, one of a class of the user's (a DataFrame subclass overriding ``query``), a frame's bound method
    a class or object holds (``query = DF.query``), or one made at run time (a ``__getattr__``)."""
    if isinstance(receiver, types.ModuleType):
        found = vars(receiver).get(attribute, _ABSENT)
        return reads_every_name(found) or (isinstance(found, types.MethodType) and _may_evaluate(found))
    if derives_from_frame(receiver):
        return True
    try:
        found = inspect.getattr_static(receiver, attribute)  # runs no descriptor and no __getattr__
    except AttributeError:
        return True
    return _may_evaluate(found)


def receiver_evaluates(fn: types.FunctionType, holder: Any, path: tuple[str, ...], attribute: str) -> bool:
    """Return False where ``path`` (a name and attributes) in the code of ``fn`` names an object known to evaluate
    no text with its ``attribute`` (a KDTree's query); ``path``'s name is ``fn``'s first parameter, bound to
    ``holder`` (``self.tree``) unless that is None, or one of its globals (``DF``). True where that is not known."""
    code = fn.__code__
    root, *chain = path
    if code.co_argcount and root == code.co_varnames[0] and holder is not None:
        found = holder
    elif root in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        return True  # another parameter: what it holds is not known
    else:
        found = fn.__globals__.get(root, vars(builtins).get(root, _ABSENT))
    for name in chain:
        if found is _ABSENT:
            break
        found = held_attribute(found, name)
    return found is _ABSENT or evaluates_on(found, attribute)


def called_evaluates(value: Any) -> bool | None:
    """Return, for ``value(text)`` with ``value`` what a name holds, what ``evaluates_text`` does for a spelling:
    True for ``pandas.eval`` and ``numexpr.evaluate``, False for a bound ``query``/``eval`` that may be a data
    frame's (``QUERY = DF.query``), else None (it evaluates no text, as far as is known)."""
    if reads_every_name(value):
        return True
    if isinstance(value, types.MethodType) and getattr(value.__func__, "__name__", None) in AT_NAMES \
            and _may_evaluate(value):
        return False
    return None


def partial_evaluator(value: Any) -> str | None:
    """Return how to spell the evaluator a ``functools.partial`` holds (``DataFrame.query``, ``pandas.eval``), whose
    text's names are read from the code that calls the partial; None for any other value."""
    if not isinstance(value, functools.partial):
        return None
    func = value.func  # partial(partial(f, a), b) is flattened into partial(f, a, b) when made
    if reads_every_name(func):
        return f"{func.__module__.partition('.')[0]}.{func.__name__}"
    name = getattr(getattr(func, "__func__", func), "__name__", None)
    if name not in AT_NAMES:
        return None
    if isinstance(func, types.MethodType) and _may_evaluate(func):
        return f"{type(func.__self__).__name__}.{name}"
    if isinstance(func, types.FunctionType) and _frame_module(func.__globals__.get("__name__")):
        return func.__qualname__  # the class's own: partial(pd.DataFrame.query, df, text)
    return None


def held_along(owner: Any, chain: tuple[str, ...], missing: Any) -> Any:
    """Return what ``owner.a.b`` holds for ``chain`` ``("a", "b")``, each step as ``held_attribute`` reads it;
    ``missing`` where a step holds nothing stored."""
    for attribute in chain:
        if owner is missing:
            break
        owner = held_attribute(owner, attribute)
        if owner is _ABSENT:
            return missing
    return owner


def held_attribute(owner: Any, attribute: str) -> Any:
    """Return what ``owner.attribute`` holds as stored (a module's namespace, an object's or its class's dict),
    running no property or ``__getattr__``; ``_ABSENT`` where nothing is stored."""
    if isinstance(owner, types.ModuleType):
        return vars(owner).get(attribute, _ABSENT)
    # Dict lookups only (inspect.getattr_static takes tens of microseconds on a DataFrame, and a resolution that
    # reads mutable data is made on every call): the object's own dict, then its classes'.
    if not isinstance(owner, type):
        try:
            own = object.__getattribute__(owner, "__dict__")
        except AttributeError:  # __slots__: no dict of its own
            own = None
        if isinstance(own, dict) and attribute in own:
            return own[attribute]
    for klass in (owner if isinstance(owner, type) else type(owner)).__mro__:
        found = vars(klass).get(attribute, _ABSENT)
        if found is not _ABSENT:
            return found
    return _ABSENT


def is_frame(value: Any) -> bool:
    """Return True for an instance of a class deriving from a frame library's (``pd.DataFrame.query(df, ...)``
    takes the frame first and its text after it)."""
    return not isinstance(value, type) and derives_from_frame(value)


def derives_from_frame(value: Any) -> bool:
    """Return True when ``value`` is, or is an instance of, a class deriving from one of the frame libraries'."""
    cls = value if isinstance(value, type) else type(value)
    return any(_frame_module(vars(klass).get("__module__")) for klass in cls.__mro__)


def frame_code(fn: types.FunctionType) -> bool:
    """Return True for a function whose code runs in a frame library's namespace (``pd.DataFrame.query``)."""
    return _frame_module(fn.__globals__.get("__name__"))


def _frame_module(name: Any) -> bool:
    return isinstance(name, str) and name.partition(".")[0] in _FRAME_LIBRARIES


def _may_evaluate(found: Any) -> bool:
    """Return False when ``found``, a method as its class stores it (or bound), is a library's other than the
    frame libraries', bound to no frame; True where that is not known."""
    if isinstance(found, (staticmethod, classmethod)):
        found = found.__func__
    if isinstance(found, types.MethodType):  # a bound method a class holds: Tools.query = DF.query
        if derives_from_frame(found.__self__):
            return True
        found = found.__func__
    if isinstance(found, types.FunctionType):  # judged by the namespace its code runs in, not by __module__
        return is_user_code(found) or _frame_module(found.__globals__.get("__name__"))
    if not (isinstance(found, _BUILT_FUNCTIONS) or type(found).__name__ in _CYTHON_FUNCTIONS):
        return True  # a callable object, a partial...: what it calls is not known
    name = getattr(found, "__module__", None)
    if not isinstance(name, str):  # a C method's descriptor: its class's module
        owner = getattr(found, "__objclass__", None)
        name = vars(owner).get("__module__") if isinstance(owner, type) else None
    module = sys.modules.get(name) if isinstance(name, str) else None
    return module is None or _frame_module(name) or is_user_code(module)


# The functions compiled code defines: builtins, C methods and their descriptors, and Cython's (scikit-learn's trees).
_BUILT_FUNCTIONS = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
                    types.ClassMethodDescriptorType)
_CYTHON_FUNCTIONS = frozenset({"cython_function_or_method", "fused_cython_function"})


def namespace_reader(value: Any, path: str | None = None) -> str | None:
    """Return the name of the builtin that reads its caller's namespace ``value`` is (``eval``...), or that
    ``path`` names (``builtins.eval``); else None."""
    for name in NAMESPACE_READERS:
        if value is vars(builtins)[name] or path == f"builtins.{name}":
            return name
    return None


def reads_every_name(value: Any, path: str | None = None) -> bool:
    """Return True when ``value`` is ``pandas.eval`` or ``numexpr.evaluate``, or ``path`` names one of them
    (an import the code makes itself, whose module may not be loaded yet)."""
    for module_name, attr in _EVERY_NAME_FUNCTIONS:
        module = sys.modules.get(module_name)
        # Read from the module's namespace: a module __getattr__ (a lazy import) does not run here.
        if (module is not None and value is vars(module).get(attr, _ABSENT)) or path == f"{module_name}.{attr}":
            return True
    return False


_ABSENT = object()


def marked_names(text: str) -> list[str]:
    """Return the ``@names`` of a text passed to any call, which may be a frame's ``query``/``eval`` reached by a
    route its spelling does not show (``mod.QUERY(text)``, ``pd.DataFrame.query(df, text)``, a partial); an ``@``
    right after a word (``user@host``) marks none."""
    if "@" not in text:
        return []
    found: dict[str, None] = {}
    after_dot = False
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name is not None and not after_dot and match.group("at") is not None and not keyword.iskeyword(name) \
                and not (match.start() and (text[match.start() - 1].isalnum() or text[match.start() - 1] == "_")):
            found[name] = None
        after_dot = match.group("dot") is not None
    return list(found)


def names_read(text: str, every_name: bool) -> list[str]:
    """Return the variables ``text`` reads from its caller's scope, in order, once each."""
    found: dict[str, None] = {}
    after_dot = False
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name is not None and not after_dot and (match.group("at") is not None or every_name) \
                and not keyword.iskeyword(name):
            found[name] = None
        after_dot = match.group("dot") is not None
    return list(found)
