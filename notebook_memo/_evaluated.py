"""The names a text evaluated in its caller's scope reads: ``df.query("x > @limit")``, ``pd.eval("a + b")``.

pandas' ``DataFrame.query`` and ``DataFrame.eval`` look each ``@name`` up among the calling frame's
variables; ``pandas.eval`` and ``numexpr.evaluate`` look up every name of the text there. Such a
read appears in the code only as a string, so the code and bytecode analyses ask here.
"""

from __future__ import annotations

import keyword
import re

__all__ = ()

AT_NAMES = frozenset({"query", "eval"})  # methods whose text reads the caller's @names
# (receiver, function) whose text reads every name it holds from the caller's scope
EVERY_NAME = frozenset({("pd", "eval"), ("pandas", "eval"), ("ne", "evaluate"), ("numexpr", "evaluate")})

# Quoted parts (strings, `column names`) are skipped; a name after a dot is an attribute, not a read.
_TOKEN = re.compile(r"""(?P<quoted>'(?:\\.|[^'\\])*'?|"(?:\\.|[^"\\])*"?|`[^`]*`?)"""
                    r"""|(?P<at>@\s*)?(?P<name>[^\W\d]\w*)|(?P<number>\d[\w.]*)|(?P<dot>\.)|\S""")


def evaluates_text(receiver: str | None, attribute: str) -> bool | None:
    """Return None when ``receiver.attribute(text)`` evaluates no text in its caller's scope, else
    whether every name of the text is read (``pd.eval``) rather than its ``@names`` (``df.query``)."""
    if (receiver, attribute) in EVERY_NAME:
        return True
    return False if attribute in AT_NAMES else None


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
