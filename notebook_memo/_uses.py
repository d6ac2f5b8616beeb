"""How code uses a global it reads, from its instructions: called (with how many arguments, which keywords, which
constants) or only tested (``x is None``, ``if x:``). What a reader does depends on it: ``fileinput.input(files)``
reads those files, ``fileinput.input()`` the standard input; ``sys.stdin is not None`` reads nothing."""

from __future__ import annotations

import dis
import functools
import types
from typing import Any, NamedTuple

from ._bytecode import global_chains

__all__ = ()

CALLED, TESTED, OTHER = "called", "tested", "other"


class Use(NamedTuple):
    """One read of a global name and attribute chain (as ``global_loads`` gives them) and what is done with it."""

    root: str
    chain: tuple[str, ...]
    how: str  # CALLED, TESTED or OTHER
    arguments: int = -1  # a call's number of arguments; -1 where it is not known (``f(*args)``, a branch inside)
    keywords: tuple[str, ...] = ()  # ... the names of those passed by keyword, last
    first: tuple[Any, ...] = ()  # ... the constant its first argument starts with, alone in a tuple (``f("-")``)
    constants: tuple[Any, ...] = ()  # ... every constant its arguments load
    first_name: tuple[str, ...] = ()  # ... the global and attributes its first argument starts with (``f(pty.X)``)


_SKIPPED = frozenset({"CACHE", "EXTENDED_ARG"})
# Where a name's value is popped by a test of it: ``x is None`` (3.11+ in a condition), ``if x:``, ``x and y``.
_TESTS = frozenset({"POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE",
                    "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_IF_NONE",
                    "POP_JUMP_IF_NOT_NONE", "POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_FORWARD_IF_NOT_NONE",
                    "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE", "JUMP_IF_FALSE_OR_POP", "TO_BOOL"})
# The call of what is on the stack below its arguments; on 3.11 PRECALL comes first and is the one matched, since
# at an inner call's CALL the depth left may equal that call's count by chance.
_CALLS = frozenset({"CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW", "CALL_KW", "PRECALL"})
_KEYWORD_CALLS = frozenset({"CALL_FUNCTION_KW", "CALL_KW"})  # the keywords' names are a tuple on the stack


@functools.lru_cache(maxsize=1024)
def global_uses(code: types.CodeType) -> tuple[Use, ...]:
    """Return each read of a global name (or a module the body imports) with its attribute chain in ``code`` and
    code nested in it, and how it is used: called, tested, or otherwise (kept, passed on, iterated)."""
    found: list[Use] = []
    listed: list[dis.Instruction] | None = None
    precall = False
    for current, ins, _k, j, root, chain in global_chains(code, _SKIPPED):
        if ins is not listed:  # the first read in this code
            listed, precall = ins, any(i.opname == "PRECALL" for i in ins)
        found.append(_use(ins, j, root, chain, precall, current.co_consts))
    return tuple(found)


def _use(ins: list[dis.Instruction], j: int, root: str, chain: tuple[str, ...], precall: bool,
         consts: tuple[Any, ...]) -> Use:
    """Return how the value loaded just before ``ins[j]`` is used."""
    after = [step for step in ins[j:j + 3] if step.opname not in ("NOP", "COPY")]
    if after and (after[0].opname in _TESTS or (after[0].opname == "LOAD_CONST" and after[0].argval is None
                                                  and len(after) > 1 and after[1].opname == "IS_OP")):
        return Use(root, chain, TESTED)
    # An argument starts with a load, or there is none: anything else takes the value itself (``for x in v``,
    # ``v = ...``, ``f(v)``, a comprehension over it), which no depth count tells from a call of it.
    if not after or not (after[0].opname in _CALLS or after[0].opname.startswith(("LOAD_", "BUILD_", "KW_NAMES"))
                         or after[0].opname == "PUSH_NULL"):
        return Use(root, chain, OTHER)
    depth = 0  # what the arguments pushed so far
    loaded: list[Any] = []
    for step in ins[j:]:
        name = step.opname
        count = step.arg or 0
        if name in _CALLS and (name != "CALL" or not precall):
            extra = 1 if name in _KEYWORD_CALLS else 0
            if depth == count + extra:
                keywords = _keywords(ins, step, consts, extra)
                if keywords is None:
                    return Use(root, chain, CALLED, constants=tuple(loaded))
                first = (ins[j].argval,) if count and ins[j].opname == "LOAD_CONST" else ()
                return Use(root, chain, CALLED, count, keywords, first, tuple(loaded),
                           _first_name(ins, j) if count else ())
        elif name == "CALL_FUNCTION_EX" and depth in (1, 2):
            return Use(root, chain, CALLED, constants=tuple(loaded))
        if step.opcode in dis.hasjrel or step.opcode in dis.hasjabs or name == "RETURN_VALUE":
            break  # a branch inside the arguments (``f(a if c else b)``), or the value was never called
        if name == "LOAD_CONST":
            loaded.append(step.argval)
        try:
            depth += dis.stack_effect(step.opcode, step.arg if step.opcode >= dis.HAVE_ARGUMENT else None, jump=False)
        except ValueError:
            break
        if depth < 0:
            break
    return Use(root, chain, OTHER, constants=tuple(loaded))


def _first_name(ins: list[dis.Instruction], j: int) -> tuple[str, ...]:
    """Return the global name and attribute chain loaded from ``ins[j]`` on (``STDIN``, ``pty.STDIN_FILENO``)."""
    if ins[j].opname not in ("LOAD_GLOBAL", "LOAD_NAME") or not isinstance(ins[j].argval, str):
        return ()
    names = [ins[j].argval]
    for step in ins[j + 1:]:
        if step.opname != "LOAD_ATTR" or not isinstance(step.argval, str):
            break
        names.append(step.argval)
    return tuple(names)


def _keywords(ins: list[dis.Instruction], call: dis.Instruction, consts: tuple[Any, ...],
              extra: int) -> tuple[str, ...] | None:
    """Return the names of the keyword arguments of ``call``: 3.11 and 3.12 give them by KW_NAMES before the call,
    others as a constant tuple loaded last. None where they cannot be read."""
    at = ins.index(call)
    if extra:
        names = ins[at - 1].argval if at and ins[at - 1].opname == "LOAD_CONST" else None
        return names if isinstance(names, tuple) else None
    for step in reversed(ins[max(0, at - 2):at]):
        if step.opname == "KW_NAMES":
            names = consts[step.arg] if step.arg is not None and step.arg < len(consts) else None
            return names if isinstance(names, tuple) else None
    return ()
