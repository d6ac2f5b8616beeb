"""What a code object reads, from its instructions: global names and the modules its body imports."""

from __future__ import annotations

import dis
import functools
import inspect
import os
import re
import sys
import types
from collections.abc import Iterator
from typing import Any, NamedTuple

from ._evaluated import (
    AT_NAMES,
    derives_from_frame,
    evaluates_text,
    frame_code,
    held_attribute,
    marked_names,
    names_read,
    receiver_evaluates,
)

__all__ = ()

_LOAD_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_STORE_OPS = frozenset({"STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"})
_LOCAL_LOAD_OPS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_CLASSDEREF", "LOAD_NAME",
                             "LOAD_GLOBAL"})
# Between an IMPORT_NAME and the names it binds, only these instructions keep the import open.
_IMPORT_STEPS = frozenset({"IMPORT_FROM", "SWAP", "POP_TOP", "CACHE"}) | _STORE_OPS
_CALL_OPS = frozenset({"PRECALL", "CALL", "CALL_FUNCTION", "CALL_METHOD"})
_IMPORTERS = frozenset({"import_module", "__import__"})
WHOLE = "*"  # an attribute chain of (WHOLE,): the module itself is used, not one of its names


@functools.lru_cache(maxsize=8192)
def global_references(code: types.CodeType) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Return the global names a code object reads, each with the attribute chain after it; ``getattr(X.a, "b")``
    (with a default or not, nested or not), ``attrgetter("a.b")(X)``, ``X.a.__dict__["b"]`` and ``vars(X.a)["b"]`` give
    ``X.a`` and ``X.a.b`` with the attributes read after."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    stack = [code]
    while stack:
        current = stack.pop()
        ins = [i for i in dis.get_instructions(current) if i.opname not in _PASSED_OVER]
        k = 0
        while k < len(ins):
            if ins[k].opname not in _LOAD_GLOBAL_OPS:
                k += 1
                continue
            j = k + 1
            while j < len(ins) and ins[j].opname in _ATTR_OPS:
                j += 1
            name, chain = ins[k].argval, tuple(i.argval for i in ins[k + 1:j])
            found[(name, chain)] = None
            for longer in (*_getattr_chains(ins, k, j, chain), *_attrgetter_chains(ins, k, j, chain),
                           *_namespace_chains(ins, k, j, chain)):
                found[(name, longer)] = None
            k = j
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return tuple(found)


def _getattr_chains(ins: list[dis.Instruction], k: int, j: int, chain: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Yield the longer chains a global read ``ins[k:j]`` (with ``chain``) goes on to through ``getattr`` with a
    constant name (``getattr(np.random.mtrand, "_rand")``, ``getattr(getattr(m, "a"), "b", None).c``): what it
    reads, as ``m.a.b.c`` would; none where the name is computed (that read stays the whole object's)."""
    start = k
    while start and ins[start - 1].opname in _LOAD_GLOBAL_OPS and ins[start - 1].argval == "getattr" \
            and j < len(ins) and ins[j].opname == "LOAD_CONST" and isinstance(ins[j].argval, str):
        call = j + 1
        if call < len(ins) and ins[call].opname not in _GETATTR_CALLS and _pushes_one(ins[call]):
            # a default of one load and its attributes (None, D.x): used where the attribute is missing, which the
            # chain's read tells; one computed otherwise leaves the read the whole object's
            call += 1
            while call < len(ins) and ins[call].opname in _ATTR_OPS:
                call += 1
        if call >= len(ins) or ins[call].opname not in _GETATTR_CALLS or ins[call].arg != (2 if call == j + 1 else 3):
            return
        chain = (*chain, ins[j].argval)
        j = call + 1
        while j < len(ins) and ins[j].opname in _ATTR_OPS:
            chain = (*chain, ins[j].argval)
            j += 1
        yield chain
        start -= 1


def _attrgetter_chains(ins: list[dis.Instruction], k: int, j: int,
                       chain: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Return the longer chains a global read ``ins[k:j]`` (with ``chain``) goes on to when it is what an
    ``attrgetter`` of constant names is applied to (``operator.attrgetter("mtrand._rand")(np.random)``), as
    ``np.random.mtrand._rand`` would read; none otherwise."""
    if j >= len(ins) or ins[j].opname not in _GETATTR_CALLS or ins[j].arg != 1 or not k \
            or ins[k - 1].opname not in _GETATTR_CALLS:
        return ()
    count = ins[k - 1].arg or 0
    names = ins[k - 1 - count:k - 1]
    if not count or k - 2 - count < 0 or ins[k - 2 - count].argval != "attrgetter" \
            or ins[k - 2 - count].opname not in _LOAD_GLOBAL_OPS | _ATTR_OPS \
            or not all(step.opname == "LOAD_CONST" and isinstance(step.argval, str) for step in names):
        return ()
    after: tuple[str, ...] = ()
    if count == 1:  # one name gives the attribute itself, whose own attributes may be read next
        j += 1
        while j < len(ins) and ins[j].opname in _ATTR_OPS:
            after += (ins[j].argval,)
            j += 1
    return tuple((*chain, *step.argval.split("."), *after) for step in names)


def _namespace_chains(ins: list[dis.Instruction], k: int, j: int,
                      chain: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Return the longer chain a global read ``ins[k:j]`` (with ``chain``) goes on to when a constant key is looked up
    in its namespace (``np.random.mtrand.__dict__["_rand"]``, ``vars(np.random.mtrand)["_rand"]``), as
    ``np.random.mtrand._rand`` would read; none otherwise."""
    if chain and chain[-1] == "__dict__":
        owner = chain[:-1]
    elif k and ins[k - 1].opname in _LOAD_GLOBAL_OPS and ins[k - 1].argval == "vars" and j < len(ins) \
            and ins[j].opname in _GETATTR_CALLS and ins[j].arg == 1:
        owner, j = chain, j + 1
    else:
        return ()
    if j + 1 >= len(ins) or ins[j].opname != "LOAD_CONST" or not isinstance(ins[j].argval, str) \
            or ins[j + 1].opname != "BINARY_SUBSCR":
        return ()
    after = [ins[j].argval]
    j += 2
    while j < len(ins) and ins[j].opname in _ATTR_OPS:
        after.append(ins[j].argval)
        j += 1
    return ((*owner, *after),)


_PASSED_OVER = frozenset({"CACHE", "PUSH_NULL", "PRECALL", "NOP", "EXTENDED_ARG"})
_LOCAL_OPS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_CLASSDEREF"})
IMPORTED = "\0import "  # prefixes a module name: a local bound by ``import m`` / ``from m import x`` in the body
# prefixes a free variable or parameter of the code whose cell or default the caller resolves (global_loads)
CLOSED = "\0closure "


_DOTTED_ALIAS_STEPS = frozenset({"IMPORT_FROM", "SWAP", "ROT_TWO", "POP_TOP"})


def _local_imports(ins: list[dis.Instruction]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Return the locals an ``import`` in this code binds: name -> (IMPORTED + module, attributes taken from it)."""
    bound: dict[str, tuple[str, tuple[str, ...]]] = {}
    for k, step in enumerate(ins):
        if step.opname != "IMPORT_NAME" or k + 1 >= len(ins):
            continue
        module = step.argval
        nxt = ins[k + 1]
        if "." in module and nxt.opname == "IMPORT_FROM" and k and ins[k - 1].opname == "LOAD_CONST" \
                and ins[k - 1].argval is None:
            # ``import a.b.c as d``: the top package is imported, and each part after it taken from the one before
            # (IMPORT_FROM, with a SWAP or ROT_TWO and POP_TOP between parts), until ``d`` is bound
            j, parts = k + 1, []
            while j < len(ins) and ins[j].opname in _DOTTED_ALIAS_STEPS:
                if ins[j].opname == "IMPORT_FROM":
                    parts.append(ins[j].argval)
                j += 1
            if j < len(ins) and ins[j].opname in _STORE_OPS:
                bound[ins[j].argval] = (IMPORTED + module.partition(".")[0], tuple(parts))
            continue
        if nxt.opname in _STORE_OPS:
            bound[nxt.argval] = (IMPORTED + module.partition(".")[0], ())  # ``import a.b`` binds ``a``
            continue
        j = k + 1
        while j + 1 < len(ins) and ins[j].opname == "IMPORT_FROM" and ins[j + 1].opname in _STORE_OPS:
            bound[ins[j + 1].argval] = (IMPORTED + module, (ins[j].argval,))
            j += 2
            if j < len(ins) and ins[j].opname == "POP_TOP":
                break
    return bound


@functools.lru_cache(maxsize=8192)
def global_stores(code: types.CodeType) -> frozenset[str]:
    """Return the global names ``code`` (or code nested in it) binds or deletes (``global n; n += 1``)."""
    codes = [code]
    names: set[str] = set()
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        names.update(i.argval for i in dis.get_instructions(current) if i.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"))
    return frozenset(names)


@functools.lru_cache(maxsize=8192)
def attribute_stores(code: types.CodeType) -> frozenset[str]:
    """Return the attribute names ``code`` (or code nested in it) binds or deletes on some object
    (``Model._instance = ...``, ``cls._inst = ...``), with the constant names it passes to ``setattr``
    or ``delattr`` (every constant string of a code that calls one: which argument it is is not told)."""
    codes = [code]
    names: set[str] = set()
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        names.update(i.argval for i in dis.get_instructions(current) if i.opname in ("STORE_ATTR", "DELETE_ATTR"))
        if "setattr" in current.co_names or "delattr" in current.co_names:
            names.update(c for c in current.co_consts if isinstance(c, str) and c.isidentifier())
    return frozenset(names)


@functools.lru_cache(maxsize=8192)
def attribute_loads(code: types.CodeType) -> frozenset[str]:
    """Return the attribute names ``code`` (or code nested in it) reads on some object (``Model._instance``), with
    the constant names it passes to ``getattr`` or ``hasattr`` (every constant string of a code that calls one)."""
    codes = [code]
    names: set[str] = set()
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        names.update(i.argval for i in dis.get_instructions(current) if i.opname in _ATTR_OPS)
        if "getattr" in current.co_names or "hasattr" in current.co_names:
            names.update(c for c in current.co_consts if isinstance(c, str) and c.isidentifier())
    return frozenset(names)


# Calls that reach an object's whole namespace through their first argument (vars(C)[k] = v, setattr(C, k, v)).
_NAMESPACE_CALLS = frozenset({"vars", "setattr", "delattr"})
_NAMESPACE_METHODS = frozenset({"__setattr__", "__delattr__"})  # object.__setattr__(m, k, v), type.__setattr__


@functools.lru_cache(maxsize=8192)
def namespaces_taken(code: types.CodeType) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Return the global names, with their attribute chains, whose namespace ``code`` (or code nested in it) takes
    whole, so may change under any name: ``C.__dict__`` (``("C", ())``), ``vars(C)``, or ``setattr``/``delattr``/
    ``object.__setattr__`` with ``C`` first, whatever the name given (a constant or not)."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for _, ins, k, _, root, chain in global_chains(code, _PASSED_OVER):
        if "__dict__" in chain:
            found[root, chain[:chain.index("__dict__")]] = None
        elif k and ((ins[k - 1].opname in _LOAD_GLOBAL_OPS and ins[k - 1].argval in _NAMESPACE_CALLS)
                    or (ins[k - 1].opname in _ATTR_OPS and ins[k - 1].argval in _NAMESPACE_METHODS)):
            found[root, chain] = None
    return tuple(found)


@functools.lru_cache(maxsize=8192)
def global_loads(code: types.CodeType, closed: frozenset[str] = frozenset()) -> tuple[
        tuple[str, tuple[str, ...], str | None], ...]:
    """Return every read of a global name, with its attribute chain and the constant string used with it.

    In order and repeated: ``os.environ["X"]``, ``os.getenv("X")``, ``os.environ.get("X", d)`` and
    ``"X" in os.environ`` give ``("os", ("environ",), "X")`` and the like; the caller decides what
    the chain resolves to. The free variables and parameters named in ``closed`` are read as globals too, their
    root ``CLOSED`` + the name.
    """
    found: list[tuple[str, tuple[str, ...], str | None]] = []
    for current, ins, k, j, root, chain in global_chains(code, _PASSED_OVER, closed):
        const = _constant_at(ins, j, current.co_consts)
        if const is None and j < len(ins) and ins[j].opname == "CONTAINS_OP" and k \
                and ins[k - 1].opname == "LOAD_CONST" and isinstance(ins[k - 1].argval, str):
            const = ins[k - 1].argval
        found.append((root, chain, const))
        if const is not None and k and ins[k - 1].opname in _LOAD_GLOBAL_OPS and ins[k - 1].argval == "getattr" \
                and j + 1 < len(ins) and ins[j + 1].opname in _GETATTR_CALLS and ins[j + 1].arg == 2:
            # getattr(os.environ, "get")("X"): also read as os.environ.get("X"), what it amounts to
            found.append(_after_getattr(ins, j + 2, root, (*chain, const), current.co_consts))
    return tuple(found)


def global_chains(code: types.CodeType, passed_over: frozenset[str], closed: frozenset[str] = frozenset()) -> Iterator[
        tuple[types.CodeType, list[dis.Instruction], int, int, str, tuple[str, ...]]]:
    """Yield each read of a global name (or of a module the code imports itself) in ``code`` and code nested in it:
    the code, its instructions (less those named in ``passed_over``, one list per code), the read's first
    instruction and the one after its attribute chain, its root (``IMPORTED`` + the module for an import, ``CLOSED``
    + the name for a free variable or parameter of ``code`` named in ``closed``) and chain."""
    # Each code with the imports of the code around it that reach it through a closure (``import os`` in the body,
    # ``lambda: os.getenv("X")`` in it): its free variables of those names are the modules, as in the body.
    parameters = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    codes: list[tuple[types.CodeType, dict[str, tuple[str, tuple[str, ...]]]]] = [
        (code, {name: (CLOSED + name, ()) for name in (*code.co_freevars, *parameters) if name in closed})]
    for current, enclosing in codes:
        ins = [i for i in dis.get_instructions(current) if i.opname not in passed_over]
        imported = {**enclosing, **_local_imports(ins)} if any(i.opname == "IMPORT_NAME" for i in ins) else enclosing
        codes.extend((c, {name: imported[name] for name in c.co_freevars if name in imported})
                     for c in current.co_consts if isinstance(c, types.CodeType))
        for k, first in enumerate(ins):
            root: str = first.argval
            prefix: tuple[str, ...] = ()
            if first.opname in _LOCAL_OPS and root in imported:
                root, prefix = imported[root]
            elif first.opname not in _LOAD_GLOBAL_OPS:
                continue
            j = k + 1
            while j < len(ins) and ins[j].opname in _ATTR_OPS:
                j += 1
            yield current, ins, k, j, root, (*prefix, *(i.argval for i in ins[k + 1:j]))


# The call of getattr in global_loads' instructions (3.11's PRECALL is not among them); not _CALL_OPS, which has it
_GETATTR_CALLS = frozenset({"CALL", "CALL_FUNCTION", "CALL_METHOD"})


def _after_getattr(ins: list[dis.Instruction], j: int, root: str, chain: tuple[str, ...],
                   consts: tuple[Any, ...]) -> tuple[str, tuple[str, ...], str | None]:
    """Return the read a ``getattr(<root.chain>, "name")`` call's result goes on to make from instruction ``j``: its
    attributes, and the constant used with it, as ``global_loads`` gives a read written with dots."""
    more = list(chain)
    while j < len(ins) and ins[j].opname in _ATTR_OPS:
        more.append(ins[j].argval)
        j += 1
    return root, tuple(more), _constant_at(ins, j, consts)


@functools.lru_cache(maxsize=1024)
def passed_beside(code: types.CodeType, closed: frozenset[str] = frozenset()) -> frozenset[
        tuple[str, tuple[str, ...], str]]:
    """Return the reads ``global_loads`` gives with a constant (``closed``: as there) whose value is not what the
    constant is used with: an argument beside it (``dict(os.environ, EXTRA="1")``, ``f(os.getenv, "X")``; only the
    plain shape is told, the constant and other constants or names, then the call), or an operand beside a text the
    code builds from it (``os.environ | {"A": "1"}``, ``(os.environ, "A")``), which is neither a key nor a call's
    argument."""
    found: set[tuple[str, tuple[str, ...], str]] = set()
    for current, ins, k, j, root, chain in global_chains(code, _PASSED_OVER, closed):
        if k and ins[k - 1].opname in _LOAD_GLOBAL_OPS and ins[k - 1].argval == "getattr":
            continue  # getattr(os.environ, "get")("X"): global_loads reads it as os.environ.get("X")
        const = _constant_at(ins, j, current.co_consts)
        if const is not None and (_consumer(ins, j)[0] not in _KEY_USES or _an_argument_beside(ins, j)):
            found.add((root, chain, const))
    return frozenset(found)


_KEYWORD_CALLS = frozenset({"CALL_FUNCTION_KW", "CALL_KW"})  # their keywords' names are a constant tuple before them
_CALLS = _KEYWORD_CALLS | {"CALL", "CALL_FUNCTION", "CALL_METHOD"}
# What takes a constant that names the key read or is a call's argument: a subscript, or a call (and the steps of one)
_KEY_USES = _CALLS | {"BINARY_SUBSCR", "PRECALL", "KW_NAMES"}


def _an_argument_beside(ins: list[dis.Instruction], j: int) -> bool:
    """Return True when the value loaded just before ``ins[j]`` and what ``ins[j]`` on loads are all arguments of the
    call that follows (it takes more arguments than were loaded after that value), not that value's own call."""
    loaded = 0
    for k in range(j, len(ins)):
        step = ins[k]
        if step.opname in _CALLS:
            return (step.arg or 0) > loaded
        if step.opname in ("KW_NAMES", "PRECALL"):
            continue
        if step.opname == "LOAD_CONST" and isinstance(step.argval, tuple) and k + 1 < len(ins) \
                and ins[k + 1].opname in _KEYWORD_CALLS:
            continue
        if step.opname not in _VALUE_LOADS or (step.opname == "LOAD_GLOBAL" and (step.arg or 0) & 1
                                               and sys.version_info >= (3, 11)):
            return False  # anything but plain loads: not told, the constant is taken as before
        loaded += 1
    return False


SUBSCRIPT, CALLED_WITH, CONTAINED = "subscript", "call", "in"  # how a global name is used with a read (name_arguments)


@functools.lru_cache(maxsize=8192)
def name_arguments(code: types.CodeType, closed: frozenset[str] = frozenset()) -> tuple[
        tuple[str, tuple[str, ...], str | None, str], ...]:
    """Return every read of a global name used with no constant, as ``global_loads`` gives it, with the global
    name used with it as a whole and how: ``os.environ[VAR]`` (SUBSCRIPT), ``os.environ.get(VAR)`` (CALLED_WITH:
    the first argument of the call that follows), ``VAR in os.environ`` (CONTAINED); or None (``os.environ.copy()``,
    ``os.environ[name]``, ``os.getenv(PREFIX + name)``, a name the code binds itself, such as a cell's ``VAR = ...``:
    its value as the code starts is not the one it reads). ``closed``: as for ``global_loads``."""
    found: list[tuple[str, tuple[str, ...], str | None, str]] = []
    for current, ins, k, j, root, chain in global_chains(code, _PASSED_OVER, closed):
        if _constant_at(ins, j, current.co_consts) is not None:
            continue
        argument, how = None, ""
        if j < len(ins) and ins[j].opname in _LOAD_GLOBAL_OPS and _whole_value(ins, j) \
                and not _named_key(ins, j, current.co_consts):
            consumer, above = _consumer(ins, j)
            if consumer == "BINARY_SUBSCR" and above == 0:
                argument, how = ins[j].argval, SUBSCRIPT
            elif consumer.startswith("CALL") or consumer == "KW_NAMES":
                argument, how = ins[j].argval, CALLED_WITH
        elif j < len(ins) and ins[j].opname == "CONTAINS_OP" and k and ins[k - 1].opname in _LOAD_GLOBAL_OPS:
            argument, how = ins[k - 1].argval, CONTAINED
        found.append((root, chain, argument, how))
    stored: set[str] = set()
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        stored.update(i.argval for i in dis.get_instructions(current) if i.opname in _BINDS_NAME)
    return tuple((root, chain, None if argument in stored else argument, how)
                 for root, chain, argument, how in found)


_BINDS_NAME = frozenset({"STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL"})


def _whole_value(ins: list[dis.Instruction], j: int) -> bool:
    """Return True when the value ``ins[j]`` loads is used as it is (``os.environ[VAR]``, ``getenv(VAR)``): not an
    attribute of it, a part of it or a text computed from it (``VAR.lower()``, ``VAR[0]``, ``VAR + "_URL"``,
    ``f"{VAR}"``)."""
    consumer, above = _consumer(ins, j)
    if consumer in _COMBINING or consumer in _FORMAT_OPS or consumer in ("FORMAT_SIMPLE", "CONVERT_VALUE"):
        return False
    return not (above >= 1 and consumer == "BINARY_SUBSCR") and not (above == 0 and consumer in _ATTR_OPS)


def _constant_at(ins: list[dis.Instruction], j: int, consts: tuple[Any, ...]) -> str | None:
    """Return the text constant instruction ``j`` loads to use whole (a name, a key), or None."""
    if j < len(ins) and ins[j].opname == "LOAD_CONST" and isinstance(ins[j].argval, (str, bytes)) \
            and not _combined(ins, j) and not _named_key(ins, j, consts):
        value = ins[j].argval  # os.environb[b"X"]: the variable of that name
        return value if isinstance(value, str) else os.fsdecode(value)
    return None


@functools.lru_cache(maxsize=8192)
def loose_attributes(code: types.CodeType) -> frozenset[str]:
    """Return the attribute names ``code`` (or code nested in it) reads from values other than a global or an
    imported module: methods called on what a call returned or a local holds (``Path(p).resolve()``,
    ``stamp.astimezone()``), which ``global_loads`` cannot follow to what they are."""
    names: set[str] = set()
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        ins = [i for i in dis.get_instructions(current) if i.opname not in _PASSED_OVER]
        imported = _local_imports(ins) if any(i.opname == "IMPORT_NAME" for i in ins) else {}
        chained = False  # the attribute follows a global or an imported module's name: global_loads has it
        for step in ins:
            if step.opname in _ATTR_OPS:
                if not chained:
                    names.add(step.argval)
                continue
            chained = step.opname in _LOAD_GLOBAL_OPS or (step.opname in _LOCAL_OPS and step.argval in imported)
    return frozenset(names)


_ZERO_ARGUMENT_CALLS = frozenset({"CALL", "CALL_METHOD", "CALL_FUNCTION"})


@functools.lru_cache(maxsize=1024)
def seeds_without_argument(code: types.CodeType) -> tuple[tuple[str, tuple[str, ...]] | None, ...]:
    """Return each call of a method named ``seed`` with no argument in ``code`` (or code nested in it): the global
    and attribute chain its receiver is read from (``GEN.seed()``, ``np.random.seed()``), or None for any other
    receiver (a local, what a call returned: ``torch.Generator().seed()``). A module the body imports is left out."""
    found: list[tuple[str, tuple[str, ...]] | None] = []
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        ins = [i for i in dis.get_instructions(current) if i.opname not in _PASSED_OVER]
        for k, step in enumerate(ins[:-1]):
            call = ins[k + 1]
            if step.opname not in _ATTR_OPS or step.argval != "seed" or call.opname not in _ZERO_ARGUMENT_CALLS \
                    or call.arg != 0:
                continue
            j = k - 1
            while j >= 0 and ins[j].opname in _ATTR_OPS:
                j -= 1
            if j >= 0 and _seeded_next(current, ins, j, k):
                continue
            root = ins[j] if j >= 0 else None
            if root is not None and root.opname in _LOAD_GLOBAL_OPS:
                found.append((root.argval, tuple(i.argval for i in ins[j + 1:k])))
            elif root is None or root.opname not in _LOCAL_OPS or root.argval not in _local_imports(ins):
                found.append(None)
    return tuple(found)


_SEED_VALUE_LOADS = frozenset({"LOAD_CONST", "LOAD_SMALL_INT", "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_BORROW",
                               "LOAD_DEREF", "LOAD_NAME", "LOAD_GLOBAL"})


def _seeded_next(code: types.CodeType, ins: list[dis.Instruction], j: int, k: int) -> bool:
    """Return True when the ``.seed()`` called on the receiver loaded by ``ins[j:k]`` (a name and its attributes) is
    a statement of its own followed at once by ``<the same receiver>.manual_seed(<a name or constant>)``, with no
    exception handler around them: a torch generator's ``manual_seed`` sets its whole state from its argument (or
    raises, for anything but an integer), so the entropy ``.seed()`` took is never drawn from."""
    if ins[j].opname not in _SEED_VALUE_LOADS or ins[j].opname == "LOAD_CONST":
        return False
    receiver = [(i.opname, i.argval) for i in ins[j:k]]
    after = k + 3  # .seed, the call, and the POP_TOP that drops the seed it returns
    if after + len(receiver) + 2 >= len(ins) or ins[k + 2].opname != "POP_TOP" \
            or [(i.opname, i.argval) for i in ins[after:after + len(receiver)]] != receiver:
        return False
    method, value, call = ins[after + len(receiver):after + len(receiver) + 3]
    if method.opname not in _ATTR_OPS or method.argval != "manual_seed" or value.opname not in _SEED_VALUE_LOADS \
            or call.opname not in _ZERO_ARGUMENT_CALLS or call.arg != 1:
        return False
    entries = getattr(dis.Bytecode(code), "exception_entries", None)
    if entries is None:  # before 3.11: handlers are set up by instructions
        return not any(i.opname.startswith("SETUP_") for i in ins)
    return not any(entry.start <= call.offset and ins[j].offset < entry.end for entry in entries)


def _named_key(ins: list[dis.Instruction], j: int, consts: tuple[Any, ...]) -> bool:
    """Return True when the call the constant at ``ins[j]`` starts passes ``key=`` by name
    (``os.getenv(default="x", key="SPLIT")``): the first constant is then not the variable's name."""
    for i in range(j + 1, len(ins)):
        op = ins[i].opname
        if op == "KW_NAMES":  # 3.11 and 3.12: its argument indexes the constants
            index = ins[i].arg
            names = consts[index] if index is not None and index < len(consts) else None
            return not isinstance(names, tuple) or "key" in names
        if op in ("CALL_KW", "CALL_FUNCTION_KW"):
            names = ins[i - 1].argval if ins[i - 1].opname == "LOAD_CONST" else ()
            return not isinstance(names, tuple) or "key" in names
        if op.startswith("CALL") or op == "PRECALL":
            return False
    return False


_COMBINING = frozenset({"BINARY_OP", "BINARY_ADD", "BINARY_MODULO", "BUILD_STRING", "FORMAT_VALUE"})
_VALUE_LOADS = _LOCAL_LOAD_OPS | _LOAD_GLOBAL_OPS | {"LOAD_CONST"}


def _combined(ins: list[dis.Instruction], j: int) -> bool:
    """Return True when the constant string at ``ins[j]`` is only the start of a text the code computes
    ("$ROOT/" + name, "data_%s" % split, "X_" + name[-1], an f-string, "@{}".format(name), " ".join(parts),
    "ab"[1:]): what is read is then not that constant."""
    consumer, above = _consumer(ins, j)
    if above == 0 and consumer in _ATTR_OPS:
        return True  # an attribute of the text itself: its method's result is read, not the text
    return above >= 1 and (consumer in _COMBINING or consumer in ("BINARY_SUBSCR", "BUILD_SLICE", "BINARY_SLICE"))


@functools.lru_cache(maxsize=1024)
def text_pieces(code: types.CodeType) -> frozenset[str]:
    """Return the constant texts ``code`` itself (not code nested in it) loads as a part of a text it computes
    (``QUERY + "CURRENT_DATE"``, an f-string's literal parts, ``"...".format(x)``)."""
    ins = [i for i in dis.get_instructions(code) if i.opname not in _PASSED_OVER]
    return frozenset(step.argval for j, step in enumerate(ins)
                     if step.opname == "LOAD_CONST" and isinstance(step.argval, str)
                     and (_combined(ins, j) or _consumer(ins, j)[0] in _COMBINING))  # the start, or a later part


def _consumer(ins: list[dis.Instruction], j: int) -> tuple[str, int]:
    """Return the instruction that takes the value ``ins[j]`` loads off the stack, and how many values lay above it
    then (0: it was the top, the right operand or a subscript's index), following loads, attributes, subscripts
    and operators; a call or any other instruction ends the walk, and is returned as the consumer."""
    above = 0
    for step in ins[j + 1:]:
        op, arg = step.opname, step.arg or 0
        if op in _VALUE_LOADS:
            pops, pushes = 0, 1 + (arg & 1 if op == "LOAD_GLOBAL" and sys.version_info >= (3, 11) else 0)
        elif op == "LOAD_ATTR":
            pops, pushes = 1, 1 + (arg & 1 if sys.version_info >= (3, 12) else 0)
        elif op == "LOAD_METHOD":
            pops, pushes = 1, 2
        elif op in ("BINARY_SUBSCR", "BINARY_OP", "BINARY_ADD", "BINARY_MODULO", "FORMAT_WITH_SPEC"):
            pops, pushes = 2, 1
        elif op == "FORMAT_VALUE":
            pops, pushes = 1 + (1 if arg & 4 else 0), 1
        elif op in ("FORMAT_SIMPLE", "CONVERT_VALUE"):
            pops, pushes = 1, 1
        elif op == "BUILD_STRING":
            pops, pushes = arg, 1
        else:
            return op, above
        if pops > above:
            return op, above
        above += pushes - pops
    return "", above


ImportRef = tuple[str, int, tuple[str, ...]]  # module name, relative level, attribute chain


def _bare(chain: tuple[str, ...]) -> tuple[str, ...]:
    return () if chain else (WHOLE,)  # a name bound to the module itself, used without an attribute


def _imports_by_name(code: types.CodeType) -> list[tuple[str, tuple[str, ...], str | None]]:
    """Return the modules a code object imports by a constant name at run time.

    ``importlib.import_module("m")`` and ``__import__("m")``: each with the attributes read
    from the result and the local name it is stored in, if any.
    """
    found: list[tuple[str, tuple[str, ...], str | None]] = []
    ins = [i for i in dis.get_instructions(code) if i.opname not in ("CACHE", "PUSH_NULL")]
    for k in range(1, len(ins) - 1):
        const, caller = ins[k], ins[k - 1]
        if caller.opname not in _LOCAL_LOAD_OPS | _ATTR_OPS or caller.argval not in _IMPORTERS:
            continue
        if const.opname != "LOAD_CONST" or not isinstance(const.argval, str) or const.argval.startswith("."):
            found.append(("", (), None))  # a name computed at run time (or relative to a package)
            continue
        j = k + 1
        while j < len(ins) and ins[j].opname in _CALL_OPS:
            j += 1
        if j == k + 1:
            continue  # the name is not the call's only argument
        # __import__("a.b") returns the top package, like ``import a.b``.
        name = const.argval.partition(".")[0] if caller.argval == "__import__" else const.argval
        found.append((name, *_taken(ins, j)))
    return found


def _taken(ins: list[dis.Instruction], j: int) -> tuple[tuple[str, ...], str | None]:
    """Return what is taken of a module found at ``ins[j - 1]``: the attribute chain read from it, or (WHOLE,) and
    the name it is stored in (None when used otherwise)."""
    chain: list[str] = []
    while j < len(ins) and ins[j].opname in _ATTR_OPS:
        chain.append(ins[j].argval)
        j += 1
    stored = ins[j].argval if not chain and j < len(ins) and ins[j].opname in _STORE_OPS else None
    return (tuple(chain) if chain or stored else (WHOLE,)), stored


OWN_MODULE = "\0own"  # stands for the module the code belongs to: sys.modules[__name__]


def _modules_looked_up(code: types.CodeType) -> list[tuple[str, tuple[str, ...], str | None]]:
    """Return the modules a code object takes from ``sys.modules`` (``sys.modules["__main__"].K``,
    ``sys.modules.get(__name__)``), as ``_imports_by_name`` does for ``import_module``."""
    found: list[tuple[str, tuple[str, ...], str | None]] = []
    ins = [i for i in dis.get_instructions(code) if i.opname not in _PASSED_OVER]
    for k, step in enumerate(ins):
        if step.argval != "modules" or step.opname not in _ATTR_OPS or not k or ins[k - 1].argval != "sys":
            continue
        j = k + 1
        got = j < len(ins) and ins[j].opname in _ATTR_OPS and ins[j].argval == "get"
        if got:
            j += 1
        if j + 1 >= len(ins):
            continue
        key, taking = ins[j], ins[j + 1]
        if not (taking.opname.startswith(("CALL", "LOAD_")) if got else taking.opname == "BINARY_SUBSCR"
                or (taking.opname == "BINARY_OP" and taking.argrepr == "[]")):
            continue  # not a lookup: `for m in sys.modules`, `len(sys.modules)`
        if key.opname == "LOAD_CONST" and isinstance(key.argval, str):
            name = key.argval
        elif key.opname in _LOAD_GLOBAL_OPS and key.argval == "__name__":
            name = OWN_MODULE
        else:
            found.append(("", (), None))  # a module named at run time
            continue
        j += 2
        found.append((name, *_taken(ins, j)))
    return found


@functools.lru_cache(maxsize=8192)
def imported_references(code: types.CodeType) -> tuple[ImportRef, ...]:
    """Return the modules a code object imports in its body, each with the attributes read from it.

    The name ``""`` stands for a module imported by a name computed at run time, ``OWN_MODULE`` for
    the module the code belongs to.
    """
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    found: dict[ImportRef, None] = {}
    bound: dict[str, ImportRef] = {}
    for current in codes:
        for name, chain, stored in [*_imports_by_name(current), *_modules_looked_up(current)]:
            if not name:
                found[("", 0, ())] = None
                continue
            found[(name, 0, ())] = None
            found[(name, 0, chain)] = None
            if stored is not None:
                bound[stored] = (name, 0, ())
        consts: list[Any] = []
        pending: tuple[str, int, bool, tuple[str, ...]] | None = None
        for ins in dis.get_instructions(current):
            if ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):
                consts = [*consts[-1:], ins.argval]
            if ins.opname == "IMPORT_NAME":
                level = consts[0] if len(consts) == 2 and isinstance(consts[0], int) else 0
                whole = len(consts) == 2 and consts[1] is None  # `import a.b` binds the top package
                name = ins.argval.partition(".")[0] if whole and level == 0 else ins.argval
                pending = (name, level, whole, ())
                found[(name, level, ())] = None
                found[(ins.argval, level, ())] = None  # `import a.b` loads a.b: its code is then known
            elif pending is not None and ins.opname == "IMPORT_FROM":
                name, level, whole, chain = pending
                pending = (name, level, whole, (*chain, ins.argval) if whole else (ins.argval,))
            elif pending is not None and (ins.opname == "IMPORT_STAR" or ins.argrepr == "INTRINSIC_IMPORT_STAR"):
                found[(pending[0], pending[1], (WHOLE,))] = None  # `from m import *`: every name m holds
                pending = None
            elif pending is not None and ins.opname in _STORE_OPS:
                name, level, whole, chain = pending
                found[(name, level, chain)] = None
                bound[ins.argval] = (name, level, chain)
                pending = None if whole else (name, level, False, ())
            elif ins.opname not in _IMPORT_STEPS:
                pending = None
    if not bound:
        return tuple(found)
    for current in codes:
        ref: ImportRef | None = None
        attrs: list[str] = []
        for ins in dis.get_instructions(current):
            if ins.opname == "CACHE":
                continue
            if ref is not None and ins.opname in _ATTR_OPS:
                attrs.append(ins.argval)
                continue
            if ref is not None:
                found[(ref[0], ref[1], ref[2] + (tuple(attrs) or _bare(ref[2])))] = None
            ref, attrs = None, []
            if ins.opname in _LOCAL_LOAD_OPS and isinstance(ins.argval, str):
                ref = bound.get(ins.argval)
        if ref is not None:
            found[(ref[0], ref[1], ref[2] + (tuple(attrs) or _bare(ref[2])))] = None
    return tuple(found)


# (kind, name, every name of the text read, who evaluates it where a global does, else "": "GLOBAL.method" for its
# method, "GLOBAL" for the global called itself, which counts only where it holds a frame's query or eval, as does
# "GLOBAL.other" for an attribute under another name, MOD.QUERY: its text read both ways, kept as what it holds reads)
EvaluatedRead = tuple[str, str, bool, str]
TEXT_READ = "read"  # a global a constant text reads: df.query("x > @limit") in a function reading limit
TEXT_GLOBAL = "global"  # the text is this global's value at run time: df.query(QUERY)
TEXT_COMPUTED = "computed"  # a text computed at run time: what it reads is not known (name: the code's parameter
# passed on whole as the text, whose callers show it; else "")
TEXT_AFTER = "after"  # a text after this global, not written out: followed where the global is no frame
TEXT_MADE = "made"  # a text made from this global (CFG.text, make()): computed, but where the global is a text
TEXT_PASSED = "passed"  # a global passed whole to any call: where it holds a text, its @names are read


@functools.lru_cache(maxsize=8192)
def evaluated_reads(code: types.CodeType) -> tuple[EvaluatedRead, ...]:
    """Return what the texts ``code`` (or code nested in it) evaluates in its own scope read from its
    globals: ``df.query("x > @limit")``, ``pd.eval("a + b")``, ``getattr(df, "query")(...)``,
    ``methodcaller("query", ...)``, and ``QUERY(...)`` for a global that may hold ``df.query``; names that are the
    code's locals are not."""
    found: dict[EvaluatedRead, None] = {}
    codes = [code]
    # The aliases (df = DF) a nested function reads from the code around it (lambda: df.query(...)), by the code
    inherited: dict[types.CodeType, dict[str, str]] = {}
    for current in codes:
        nested = [c for c in current.co_consts if isinstance(c, types.CodeType)]
        codes.extend(nested)
        ins = [i for i in dis.get_instructions(current) if i.opname not in _PASSED_OVER]
        local = {*current.co_varnames, *current.co_cellvars, *current.co_freevars}
        aliases = {**inherited.get(current, {}), **_global_aliases(ins, current)}
        for inner in nested:
            inherited[inner] = {name: spelled for name, spelled in aliases.items() if name in inner.co_freevars}
        for k in range(len(ins) - 1):
            for name in _passed_marks(ins, k):
                if name not in local:
                    found[(TEXT_READ, name, False, "")] = None
            if _passed_global(ins, k, local):
                found[(TEXT_PASSED, ins[k].argval, False, "")] = None
            call = _evaluating_call(ins, k, aliases)
            if call is None:
                continue
            spelled_every, owner, j = call
            # MOD.QUERY(text) may hold a frame's query or pandas.eval: its text is read both ways, kept as it holds;
            # so is that of an eval whose receiver is spelled by no module's usual name (STORE.pd.eval, p = pd)
            last = owner.rpartition(".")[2]
            other_name = last not in ("", *AT_NAMES) or (last == "eval" and not spelled_every)
            for every in (False, True) if other_name else (spelled_every,):
                _text_reads(ins, k, j, every, owner, local, found)
    return tuple(found)


def _text_reads(ins: list[dis.Instruction], k: int, j: int, every: bool, owner: str, local: set[str],
                found: dict[EvaluatedRead, None]) -> None:
    """Add to ``found`` what the text of the evaluating call at ``ins[k]``, starting at ``ins[j]``, reads."""
    first = ins[j]
    if first.opname in _STORE_OPS and ins[k].opname in _ATTR_OPS:
        # q = df.query: which texts the name is called with is not followed, as for a computed one
        found[(TEXT_COMPUTED, "", every, owner)] = None
        return
    if not first.opname.startswith("LOAD_") or first.opname in _ATTR_OPS:
        return  # no text passed: model.eval()
    after = ins[j + 1].opname if j + 1 < len(ins) else ""
    if first.opname in _LOAD_GLOBAL_OPS and (after.startswith(("CALL", "LOAD_")) or after == "KW_NAMES"):
        # the global is the whole argument, or the text is made from it (TEXT.strip(), CFG.text, make())
        found[(TEXT_GLOBAL if _passed_whole(ins, j) else TEXT_MADE, first.argval, every, owner)] = None
        if after.startswith("LOAD_") and not (after == "LOAD_CONST" and isinstance(ins[j + 1].argval, str)
                                              and not _combined(ins, j + 1)):
            # pd.DataFrame.query(DF, text): where the global holds a frame, the text comes after it
            found[(TEXT_AFTER, first.argval, every, owner)] = None
        return
    text = _text_at(ins, j, every)
    if text is None:
        found[(TEXT_COMPUTED, _parameter_passed(ins, j), every, owner)] = None
        return
    for name in names_read(text, every):
        if name not in local:
            found[(TEXT_READ, name, every, owner)] = None


def _parameter_passed(ins: list[dis.Instruction], j: int) -> str:
    """Return the name of the local ``ins[j]`` loads where it is passed whole to a call (``self.df.query(text)``),
    else "": whether it is a parameter is told by the code's signature, where it is known."""
    step = ins[j]
    if step.opname not in _FAST_LOADS or not isinstance(step.argval, str):
        return ""
    consumer, _ = _consumer(ins, j)
    return step.argval if consumer.startswith("CALL") or consumer == "KW_NAMES" else ""


@functools.lru_cache(maxsize=4096)
def class_route_receivers(code: types.CodeType, name: str, attribute: str) -> tuple[str | None, ...]:
    """Return, for each place ``code`` (or code nested in it) reads ``name.attribute`` of the global ``name``, the
    global passed whole right after it (``Box.q(BOX, text)``: ``BOX``, the method's first argument); None where
    it is read otherwise (``q = Box.q``, ``map(Box.q, items)``)."""
    found: list[str | None] = []
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        ins = [i for i in dis.get_instructions(current) if i.opname not in _PASSED_OVER]
        for k in range(1, len(ins)):
            if ins[k].opname not in _ATTR_OPS or ins[k].argval != attribute or \
                    ins[k - 1].opname not in _LOAD_GLOBAL_OPS or ins[k - 1].argval != name:
                continue
            after = ins[k + 1] if k + 1 < len(ins) else None
            passed = after is not None and after.opname in _LOAD_GLOBAL_OPS and isinstance(after.argval, str) \
                and _passed_whole(ins, k + 1)
            found.append(after.argval if passed and after is not None else None)
    return tuple(found)


def _passed_marks(ins: list[dis.Instruction], k: int) -> list[str]:
    """Return the ``@names`` of a constant text ``ins[k]`` loads as a call's argument, whichever call: a frame's
    query may be reached by a route the code does not spell (``mod.QUERY(text)``, ``pd.DataFrame.query(df, text)``,
    ``partial(df.query, text)``), and an ``@name`` in a text is rare enough elsewhere to key it anyway."""
    step = ins[k]
    if step.opname != "LOAD_CONST" or not isinstance(step.argval, str) or "@" not in step.argval:
        return []
    consumer, _ = _consumer(ins, k)
    if not (consumer.startswith("CALL") or consumer == "KW_NAMES") or _combined(ins, k):
        return []
    return marked_names(step.argval)


def _passed_whole(ins: list[dis.Instruction], j: int) -> bool:
    """Return True where the global ``ins[j]`` loads is passed to a call as it is: not called itself (``make()``),
    nor an attribute, item or operand of what is passed (``CFG.text``, ``TEXTS[0]``)."""
    step = ins[j]
    if sys.version_info >= (3, 11) and step.opname == "LOAD_GLOBAL" and (step.arg or 0) & 1:
        return False  # a NULL pushed before it: the global is called
    if j + 1 < len(ins) and ins[j + 1].opname == "CALL_FUNCTION" and ins[j + 1].arg == 0:
        return False  # make() before 3.11
    consumer, _ = _consumer(ins, j)
    return consumer.startswith("CALL") or consumer == "KW_NAMES"


def _passed_global(ins: list[dis.Instruction], k: int, local: set[str]) -> bool:
    """Return True where ``ins[k]`` loads a global that is passed whole to a call, whichever call: where it holds a
    text, a frame's query may be reached by a route the code does not spell (``BOX.q(TEXT)`` for a method of the
    user's passing it on, ``STORE.mod.QUERY(TEXT)``, ``OPS["q"](TEXT)``), as for a constant text."""
    step = ins[k]
    if step.opname not in _LOAD_GLOBAL_OPS or not isinstance(step.argval, str) or step.argval in local:
        return False
    consumer, _ = _consumer(ins, k)
    return consumer.startswith("CALL") or consumer == "KW_NAMES"


def forwarded_evaluation(value: Any, holder: Any) -> bool | None:
    """Return, for ``holder.name(text)`` with ``value`` what ``holder`` holds under that name (a method of the
    user's class, as its class stores it or bound), whether it passes one of its parameters on whole as the text of
    a frame's query or eval (False: the text's @names are read) or of pandas.eval (True: every name); None where it
    passes none (``def q(self, text): return self.df.query(text)`` does, ``self.tree.query(points)`` does not)."""
    fn, holder = _function_held(value, holder)
    if fn is None:
        return None
    found = None
    for path, attribute, every, forwarded in _text_calls(fn.__code__):
        if forwarded and receiver_evaluates(fn, holder, path, attribute):
            if every:
                return True
            found = False
    return found


def computes_evaluated_text(value: Any, holder: Any) -> bool:
    """Return True where ``value``, what ``holder`` holds under a method's name, evaluates a text it makes itself at
    run time (``self.df.query(self.text)``) on a receiver that may be a frame: its caller's code shows no text."""
    fn, holder = _function_held(value, holder)
    return fn is not None and any(not forwarded and receiver_evaluates(fn, holder, path, attribute)
                                  for path, attribute, _, forwarded in _text_calls(fn.__code__))


def _function_held(value: Any, holder: Any) -> tuple[types.FunctionType | None, Any]:
    """Return the function ``value`` is or wraps (a method as its class stores it, or bound) and the object its first
    parameter is bound to when called through ``holder`` (None where that is what the call passes)."""
    if isinstance(value, (staticmethod, classmethod)):
        holder, value = None, value.__func__
    if isinstance(value, types.MethodType):
        holder, value = value.__self__, value.__func__
    if not isinstance(value, types.FunctionType):
        return None, None
    if isinstance(holder, (type, types.ModuleType)):
        holder = None  # a function taken from a class or module: its first parameter is what the call passes
    return value, holder


def passes_text_on(holder: Any, attribute: str) -> bool:
    """Return False where ``holder.attribute`` is a function of the user's, held by an object or class deriving from no
    data frame, that passes none of its parameters on as a text to evaluate (a method named ``query`` around a
    KDTree's): what its own code evaluates is keyed with its class. True otherwise."""
    found = held_attribute(holder, attribute)
    if isinstance(found, (staticmethod, classmethod)):
        found = found.__func__
    if not isinstance(found, types.FunctionType) or frame_code(found) or derives_from_frame(holder):
        return True
    return forwarded_evaluation(found, holder) is not None


@functools.lru_cache(maxsize=4096)
def _text_calls(code: types.CodeType) -> tuple[tuple[tuple[str, ...], str, bool, bool], ...]:
    """Return ``(receiver, method, every name read, forwarded)`` for each call in ``code`` that evaluates a text not
    written out: one of its parameters passed whole (forwarded: ``(("self", "df"), "query", False, True)`` for
    ``self.df.query(text)``), or one it makes itself (``self.df.query(self.text)``)."""
    ins = [i for i in dis.get_instructions(code) if i.opname not in _PASSED_OVER]
    parameters = set(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    found: dict[tuple[tuple[str, ...], str, bool, bool], None] = {}
    for k in range(1, len(ins) - 1):
        step, text = ins[k], ins[k + 1]
        if step.opname not in _ATTR_OPS or text.opname.startswith(("CALL", "KW_NAMES")) or \
                (text.opname == "LOAD_CONST" and not _combined(ins, k + 1)):
            continue  # no text (model.eval()), or one written out: its names are keyed with the code
        if text.opname in _LOAD_GLOBAL_OPS and _passed_whole(ins, k + 1):
            continue  # a global text: its names are keyed with the code too
        chain: list[str] = []
        j = k - 1
        while j > 0 and ins[j].opname == "LOAD_ATTR":
            chain.append(ins[j].argval)
            j -= 1
        if ins[j].opname not in _LOCAL_LOAD_OPS:
            continue
        every = evaluates_text(None if chain else ins[j].argval, step.argval)
        if every is None:
            continue
        consumer, _ = _consumer(ins, k + 1)
        forwarded = text.opname in _LOCAL_LOAD_OPS and text.argval in parameters and \
            (consumer.startswith("CALL") or consumer == "KW_NAMES")
        found[((ins[j].argval, *reversed(chain)), step.argval, every, forwarded)] = None
    return tuple(found)


def _evaluating_call(ins: list[dis.Instruction], k: int, aliases: dict[str, str]) -> tuple[bool, str, int] | None:
    """Return ``(every name read, owner, where its text starts)`` where ``ins[k]`` begins a call that may evaluate
    its text (``df.query(``, ``getattr(df, "query")(``, ``methodcaller("query", ``, ``NAME(``), else None.
    ``aliases`` maps the code's locals bound only to a global (``df = DF``) to that global's spelling."""
    step = ins[k]
    before = ins[k - 1] if k else None
    global_before = before is not None and before.opname == "LOAD_GLOBAL" and isinstance(before.argval, str)
    if step.opname in _ATTR_OPS:  # receiver.query(text): a global's is judged by what it holds when keyed
        receiver = before.argval if before is not None and before.opname in _LOCAL_LOAD_OPS else None
        every = evaluates_text(receiver if isinstance(receiver, str) else None, step.argval)
        # GLOBAL.query, STORE.box.q, or df.query for a local alias of a global: judged by what that holds when keyed
        path = _receiver_path(ins, k, aliases)
        if every is None:
            # GLOBAL.name(text): counts only where the global's attribute holds a frame's query (MOD.QUERY = DF.query)
            return (False, f"{path}.{step.argval}", k + 1) if path is not None else None
        return every, f"{path}.{step.argval}" if path is not None else "", k + 1
    if step.opname in _LOAD_GLOBAL_OPS and isinstance(step.argval, str):
        return False, step.argval, k + 1  # NAME(text): counts only where NAME holds a frame's bound query
    if step.opname != "LOAD_CONST" or step.argval not in AT_NAMES or before is None:
        return None
    if before.argval == "methodcaller" and before.opname in _ATTR_OPS | _LOCAL_LOAD_OPS:
        return False, "", k + 1  # methodcaller("query", text): applied to what, not known
    if k >= 2 and ins[k - 2].opname in _LOAD_GLOBAL_OPS and ins[k - 2].argval == "getattr" \
            and before.opname in _VALUE_LOADS and ins[k + 1].opname.startswith("CALL") and k + 2 < len(ins):
        held = before.argval if global_before else aliases.get(before.argval) if before.opname in _LOCAL_LOAD_OPS \
            else None
        return False, f"{held}.{step.argval}" if held is not None else "", k + 2  # getattr(df, "query")(text)
    return None


def _receiver_path(ins: list[dis.Instruction], k: int, aliases: dict[str, str]) -> str | None:
    """Return how the receiver of the attribute ``ins[k]`` loads is spelled from a global, where it is one: a global
    (``DF``), attributes of one (``STORE.box``), or a local alias of either (``df`` after ``df = DF``); else None."""
    chain: list[str] = []
    j = k - 1
    while j > 0 and ins[j].opname == "LOAD_ATTR":
        chain.append(ins[j].argval)
        j -= 1
    base = ins[j] if j >= 0 else None
    if base is None or not isinstance(base.argval, str):
        return None
    if base.opname == "LOAD_GLOBAL":
        root = base.argval
    elif base.opname in _FAST_LOADS and base.argval in aliases:
        root = aliases[base.argval]
    else:
        return None
    return ".".join((root, *reversed(chain)))


_FAST_LOADS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_BORROW", "LOAD_DEREF"})


def _global_aliases(ins: list[dis.Instruction], code: types.CodeType) -> dict[str, str]:
    """Return the code's locals that every assignment binds to a global or an attribute chain of one
    (``df = DF``, ``box = STORE.box``), each with that spelling: what such a local holds is known where the
    global is. A parameter, or a local bound to anything else anywhere (a call's result, a loop's item), is not."""
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    found: dict[str, str | None] = dict.fromkeys(code.co_varnames[:count])
    found.update(dict.fromkeys(code.co_freevars))  # bound by the code around it, which holds its aliases
    found.update(dict.fromkeys(_bound_inside(code)))  # nonlocal in a function inside it: bound there too
    for k, step in enumerate(ins):
        if step.opname not in ("STORE_FAST", "STORE_DEREF") or not isinstance(step.argval, str):
            continue
        chain: list[str] = []
        j = k - 1
        while j > 0 and ins[j].opname == "LOAD_ATTR" and not _method_flag(ins[j]):
            chain.append(ins[j].argval)
            j -= 1
        base = ins[j] if j >= 0 else None
        spelled = None
        # A jump into the steps (df = DF if FLAG else TREE) brings a value they did not load.
        if base is not None and base.opname == "LOAD_GLOBAL" and isinstance(base.argval, str) \
                and not _method_flag(base) and not any(i.is_jump_target for i in ins[j + 1:k + 1]):
            spelled = ".".join((base.argval, *reversed(chain)))
        if found.setdefault(step.argval, spelled) != spelled:
            found[step.argval] = None
    return {name: spelled for name, spelled in found.items() if spelled is not None}


def _bound_inside(code: types.CodeType) -> set[str]:
    """Return the names the functions nested in ``code`` bind in a scope around them (``nonlocal df``)."""
    found: set[str] = set()
    codes = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        found.update(i.argval for i in dis.get_instructions(current)
                     if i.opname == "STORE_DEREF" and i.argval in current.co_freevars)
    return found


def _method_flag(step: dis.Instruction) -> bool:
    """Return True where ``step`` (a LOAD_GLOBAL or LOAD_ATTR) also pushes a NULL or a method for a call."""
    if step.opname == "LOAD_GLOBAL":
        return sys.version_info >= (3, 11) and bool((step.arg or 0) & 1)
    return sys.version_info >= (3, 12) and bool((step.arg or 0) & 1)


def _text_at(ins: list[dis.Instruction], j: int, every: bool) -> str | None:
    """Return the text the argument starting at ``ins[j]`` holds when the code shows it: a constant, or an
    f-string whose ``{...}`` parts supply no name read (``@{v}``, or any part for ``pd.eval``); else None."""
    if ins[j].opname == "LOAD_CONST" and not _combined(ins, j):
        return ins[j].argval if isinstance(ins[j].argval, str) else None
    parts: list[str | None] = []  # the f-string's literal parts; None for a value formatted into it
    for step in ins[j:]:
        if step.opname == "BUILD_STRING":
            break
        if step.opname == "LOAD_CONST" and isinstance(step.argval, str):
            parts.append(step.argval)
        elif step.opname.startswith("FORMAT"):
            parts.append(None)
        elif step.opname.startswith("CALL") or step.opname not in _VALUE_LOADS | _ATTR_OPS | {"CONVERT_VALUE"}:
            return None  # not an f-string of plain values: computed
    else:
        return None
    if (every and None in parts) or any(isinstance(part, str) and part.rstrip().endswith("@")
                                        for part in parts[:-1]):
        return None
    return "".join(" 0 " if part is None else part for part in parts)


# A format spec that formats a number by the locale (``format(x, "n")``, ``f"{x:,n}"``), and strftime's directives
# that write the locale's names or layouts (``%A``, ``%b``, ``%c``, ``%x``, ``%p``...; ``%E``/``%O`` forms included).
_LOCALE_NUMBER = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?\d*[,_]?(?:\.\d+)?n")
_LOCALE_TIME = re.compile(r"%[EO]?[aAbBchpPrxX]")
_FORMAT_FIELD = re.compile(r"\{[^{}]*?:([^{}]*)\}")  # "{:n}".format(x): the field's spec
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")  # "{:{}}".format(x, spec): a spec given at run time
_FORMAT_OPS = frozenset({"FORMAT_VALUE", "FORMAT_WITH_SPEC"})
LC_NUMERIC, LC_TIME = "LC_NUMERIC", "LC_TIME"
_BOTH = frozenset({LC_NUMERIC, LC_TIME})  # a spec not known: a number's "n" or a date's "%A" alike
# How a text is used as a spec: a template's fields (``FMT.format(x)``), a spec whole (``format(x, SPEC)``), a
# strftime or strptime format (``d.strftime(FMT)``).
TEMPLATE, SPEC, TIME_FORMAT = "template", "spec", "time format"
# Calls taking a spec, by the name called: where the spec is (the receiver, or the argument at that place).
_SPEC_CALLS = {"format": ((TEMPLATE, -1), (SPEC, 1)), "format_map": ((TEMPLATE, -1),),
               "__format__": ((SPEC, 0),), "strftime": ((TIME_FORMAT, 0),), "strptime": ((TIME_FORMAT, 1),)}
_ARGUMENT_OPS = frozenset({"CACHE", "EXTENDED_ARG", "NOP"})
_CALL_OPS = frozenset({"CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW", "CALL_KW", "PRECALL"})
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def spec_categories(text: str | None, how: str) -> frozenset[str]:
    """Return the locale categories a spec ``text`` used ``how`` (TEMPLATE, SPEC, TIME_FORMAT) formats by; for
    None (a spec not known), all those it may."""
    if how == TIME_FORMAT:
        return frozenset({LC_TIME}) if text is None or _LOCALE_TIME.search(text) else frozenset()
    if text is None:
        return _BOTH
    if how == TEMPLATE:
        if _NESTED_FIELD.search(text):
            return _BOTH
        return frozenset().union(*(spec_categories(spec, SPEC) for spec in _FORMAT_FIELD.findall(text)))
    found = {LC_NUMERIC} if _LOCALE_NUMBER.fullmatch(text) else set()
    return frozenset(found | ({LC_TIME} if _LOCALE_TIME.search(text) else set()))  # a date's spec is strftime's


@functools.lru_cache(maxsize=8192)
def locale_formatting(code: types.CodeType) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """Return the locale categories ``code`` (or code nested in it) formats by, and the globals whose texts it
    formats with, each with how (their categories are the texts' own): ``format(x, "n")``, ``f"{x:n}"``,
    ``"{:n}".format(x)`` read LC_NUMERIC, ``d.strftime("%b")``, ``f"{d:%A}"`` LC_TIME; a spec that no constant or
    global shows (an argument, an attribute, a computed text) reads either."""
    categories: set[str] = set()
    texts: set[tuple[str, str]] = set()
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        names = set(current.co_names)
        if not names & _SPEC_CALLS.keys() and not any(i.opname in _FORMAT_OPS for i in dis.get_instructions(current)):
            continue
        # Constant texts of code calling these: read as their specs wherever they are (over-approximate, cheap).
        for text in (c for c in current.co_consts if isinstance(c, str)):
            if "strftime" in names or "strptime" in names:
                categories |= spec_categories(text, TIME_FORMAT)
            if "format" in names or "format_map" in names:
                categories |= spec_categories(text, TEMPLATE) | spec_categories(text, SPEC)
        ins = [i for i in dis.get_instructions(current) if i.opname not in _ARGUMENT_OPS]
        precall = any(i.opname == "PRECALL" for i in ins)
        for k, step in enumerate(ins):
            if step.opname in _FORMAT_OPS and (step.opname == "FORMAT_WITH_SPEC" or (step.arg or 0) & 4):
                _note_spec(ins[k - 1:k], SPEC, categories, texts)  # an f-string's field: its spec loaded last
            elif isinstance(step.argval, str) and step.argval in _SPEC_CALLS and step.opname.startswith("LOAD_"):
                arguments = _call_arguments(ins, k + 1, precall)
                for how, place in _SPEC_CALLS[step.argval]:
                    if place < 0:  # the receiver: a method's, loaded just before it
                        if step.opname in ("LOAD_METHOD", "LOAD_ATTR"):
                            _note_spec(ins[k - 1:k], how, categories, texts)
                    elif arguments is None or place < len(arguments):
                        _note_spec(arguments[place] if arguments is not None else [], how, categories, texts)
    return frozenset(categories), tuple(sorted(texts))


def _note_spec(loads: list[dis.Instruction], how: str, categories: set[str], texts: set[tuple[str, str]]) -> None:
    """Note what a spec loaded by ``loads`` formats by: a constant's categories, a global's name, else either."""
    if len(loads) == 1 and loads[0].opname == "LOAD_CONST":
        if isinstance(loads[0].argval, str):
            categories.update(spec_categories(loads[0].argval, how))
    elif len(loads) == 1 and loads[0].opname in _GLOBAL_OPS and isinstance(loads[0].argval, str):
        texts.add((loads[0].argval, how))
    else:
        categories.update(spec_categories(None, how))


def _call_end(ins: list[dis.Instruction], j: int, precall: bool) -> int | None:
    """Return where the call whose arguments start at ``ins[j]`` is made (its PRECALL where the code has them), or
    None where it cannot be told (a branch inside, ``f(*args)``, a value that is not called)."""
    depth = 0
    for end in range(j, len(ins)):
        step = ins[end]
        if step.opname in _CALL_OPS and (step.opname != "CALL" or not precall):
            keywords = 1 if step.opname in ("CALL_FUNCTION_KW", "CALL_KW") else 0
            if depth == (step.arg or 0) + keywords:
                return end
        if step.opcode in dis.hasjrel or step.opcode in dis.hasjabs or step.opname in ("RETURN_VALUE",
                                                                                      "CALL_FUNCTION_EX"):
            return None
        try:
            depth += dis.stack_effect(step.opcode, step.arg if step.opcode >= dis.HAVE_ARGUMENT else None, jump=False)
        except ValueError:
            return None
        if depth < 0:
            return None
    return None


Chain = tuple[str, tuple[str, ...]]  # a global name and its attribute chain (root as global_chains gives it)


@functools.lru_cache(maxsize=1024)
def called_before(code: types.CodeType) -> tuple[tuple[Chain, tuple[Chain, ...]], ...]:
    """Return, for each global chain ``code`` reads in its own body only (not in code nested in it), the global
    chains it calls before its first read on its straight start: before any jump, jump target or exception handler,
    so that each such call has returned when the chain is first read (``torch.manual_seed(x)``, then
    ``torch.default_generator``); a chain read in an argument of the call is not after it."""
    nested: set[Chain] = set()
    first: dict[Chain, int] = {}
    calls: list[tuple[Chain, int]] = []
    straight = -1
    for current, ins, k, j, root, chain in global_chains(code, _ARGUMENT_OPS):
        if current is not code:
            nested.add((root, chain))
            continue
        if straight < 0:
            straight = _straight_start(code, ins)
        first.setdefault((root, chain), k)
        if j < straight:
            end = _call_end(ins, j, any(i.opname == "PRECALL" for i in ins))
            if end is not None and end < straight:
                calls.append(((root, chain), end))
    return tuple((read, tuple(called for called, end in calls if end < k))
                 for read, k in first.items() if read not in nested)


def _straight_start(code: types.CodeType, ins: list[dis.Instruction]) -> int:
    """Return how many of ``code``'s instructions ``ins`` run first, each once and in order, whatever the values:
    those before its first jump, jump target or instruction an exception handler covers."""
    entries = getattr(dis.Bytecode(code), "exception_entries", None) or ()
    handled = min((entry.start for entry in entries), default=None)
    for index, step in enumerate(ins):
        if step.is_jump_target or step.opcode in dis.hasjrel or step.opcode in dis.hasjabs \
                or step.opname.startswith("SETUP_") or (handled is not None and step.offset >= handled):
            return index
    return len(ins)


def _call_arguments(ins: list[dis.Instruction], j: int, precall: bool) -> list[list[dis.Instruction]] | None:
    """Return the instructions of each positional argument of the call whose arguments start at ``ins[j]``, or None
    where they cannot be told apart (a branch inside, ``f(*args)``, a value that is not called)."""
    end = _call_end(ins, j, precall)
    if end is None:
        return None
    body = [step for step in ins[j:end] if step.opname != "KW_NAMES"]
    arguments: list[list[dis.Instruction]] = []
    while body:  # from the last argument back: the shortest tail that leaves one value more
        net = 0
        for start in range(len(body) - 1, -1, -1):
            step = body[start]
            try:
                net += dis.stack_effect(step.opcode, step.arg if step.opcode >= dis.HAVE_ARGUMENT else None,
                                        jump=False)
            except ValueError:
                return None
            if net == 1:
                break
        else:
            return None
        arguments.insert(0, body[start:])
        body = body[:start]
    return arguments


class KeywordCalls(NamedTuple):
    """The keywords ``code`` (and code nested in it) passes to calls, by name: what is known of them."""

    names: frozenset[str]  # every keyword's name passed to any call
    unpacked: bool  # some call takes its keywords from a mapping (``f(**options)``): which ones is not known
    constants: tuple[tuple[str, Any], ...]  # (name, value) of each keyword given as a constant (``f(path="a")``)


@functools.lru_cache(maxsize=1024)
def keyword_calls(code: types.CodeType) -> KeywordCalls:
    """Return the keywords ``code`` and code nested in it pass to calls (whatever is called)."""
    names: set[str] = set()
    constants: set[tuple[str, Any]] = set()
    unpacked = False
    codes = [code]
    while codes:
        current = codes.pop()
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        ins = list(dis.get_instructions(current))
        for k, step in enumerate(ins):
            if step.opname == "CALL_FUNCTION_EX":
                unpacked = unpacked or bool((step.arg or 0) & 1)
                continue
            # 3.11 and 3.12 name the keywords by KW_NAMES; 3.13 loads them as a constant tuple before CALL_KW.
            if step.opname == "KW_NAMES":
                listed = current.co_consts[step.arg or 0]
            elif step.opname == "LOAD_CONST" and k + 1 < len(ins) and ins[k + 1].opname in ("CALL_KW",
                                                                                          "CALL_FUNCTION_KW"):
                listed = step.argval
            else:
                continue
            if not isinstance(listed, tuple):
                continue
            called = [name for name in listed if isinstance(name, str)]
            names.update(called)
            values = ins[max(0, k - len(called)):k]
            # Each keyword's value is its own instruction only when each of the last ones pushes one value.
            if len(values) == len(called) and all(_pushes_one(v) for v in values):
                constants.update((name, v.argval) for name, v in zip(called, values)
                                 if v.opname == "LOAD_CONST" and _hashable(v.argval))
    return KeywordCalls(frozenset(names), unpacked, tuple(sorted(constants, key=repr)))


def _pushes_one(step: dis.Instruction) -> bool:
    """Return True when ``step`` takes nothing from the stack and pushes one value (a plain load)."""
    if not step.opname.startswith("LOAD_") or step.opname in _ATTR_OPS:
        return False
    try:
        return dis.stack_effect(step.opcode, step.arg if step.opcode >= dis.HAVE_ARGUMENT else None) == 1
    except ValueError:
        return False


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
