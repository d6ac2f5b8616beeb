"""Why a call hits or misses: compare it with what the cache holds for the same function."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._conditions import spawn_condition
from ._inventory import human_bytes, human_time, is_marker
from ._links import SAMEFILE
from ._rules import rules_digest
from ._serialize import CorruptRecord
from .stores.local import unusable_message

if TYPE_CHECKING:
    from ._dependencies import Dependencies
    from ._memo import Call, MemoizedFunction
    from .stores.local import Store

__all__ = ()

# The key parts saying which arguments (a cell's inputs) are one object or share memory: their digests tell a
# reader nothing, so explain says only that they changed.
SHARED_ARGUMENTS = "which arguments share objects or memory"
SHARED_INPUTS = "which inputs share objects or memory"
_SAID_IN_WORDS = frozenset({SHARED_ARGUMENTS, SHARED_INPUTS})


@dataclass
class Explanation:
    """The answer to 'why did this recompute?': hit or miss, and what differs.

    Prints as text; in Jupyter it renders as a small HTML report.
    """

    name: str
    hit: bool
    summary: str
    reasons: list[str] = field(default_factory=list)
    unkeyed: list[str] = field(default_factory=list)

    @property
    def shown_name(self) -> str:
        """The name as the notebook knows it: a function defined in the notebook without ``__main__.``."""
        return self.name.removeprefix("__main__.")

    def __str__(self) -> str:
        lines = [f"{self.shown_name}: {'HIT' if self.hit else 'MISS'}: {self.summary}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        if self.unkeyed:
            lines.append("  not part of the key (cannot be hashed): " + ", ".join(self.unkeyed))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.hit else "#b35900"
        items = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        unkeyed = ""
        if self.unkeyed:
            unkeyed = "<p>Not part of the key (cannot be hashed): <code>" + \
                html.escape(", ".join(self.unkeyed)) + "</code></p>"
        return (f"<div><b><code>{html.escape(self.shown_name)}</code></b>: "
                f"<b style='color:{colour}'>{'HIT' if self.hit else 'MISS'}</b> {html.escape(self.summary)}"
                f"{'<ul>' + items + '</ul>' if items else ''}{unkeyed}</div>")


def _ago(timestamp: float) -> str:
    seconds = max(time.time() - timestamp, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def differences(current: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """Return, in plain words, what differs between a call and a stored entry's metadata."""
    reasons = []
    cell = meta.get("kind") == "cell"
    argument = "input" if cell else "argument"
    if meta.get("library") != current["library"]:
        reasons.append("it was made by another version of notebook_memo, whose rules for what a key holds and "
                       "what an entry records differ: entries of that version are recomputed")
    if meta.get("own") != current["own"]:
        reasons.append("the cell's code changed" if cell else "the function's own code changed")
    old_deps: dict[str, list[str]] = meta.get("deps", {})
    new_deps: dict[str, list[str]] = current["deps"]
    for label in sorted(set(old_deps) | set(new_deps)):
        old, new = old_deps.get(label), new_deps.get(label)
        if old == new:
            continue
        kind = (new or old or ["value"])[0]
        if old is None:
            reasons.append(f"it now reads {_describe(label, kind)}, which the stored entry did not")
        elif new is None:
            reasons.append(f"it no longer reads {_describe(label, kind)}")
        elif kind == "package":
            reasons.append(f"{label} changed version ({old[1] and bytes.fromhex(old[1]).decode()} -> "
                           f"{new[1] and bytes.fromhex(new[1]).decode()})")
        elif kind == "code":
            reasons.append(f"the code of {label} changed")
        elif kind == "env":
            reasons.append(f"{label.replace('env ', 'environment variable ', 1)} changed")
        elif kind == "settings":
            reasons.append(f"the {label} changed ({bytes.fromhex(old[1]).decode()} -> "
                           f"{bytes.fromhex(new[1]).decode()})")
        else:
            reasons.append(f"the value of {_describe(label, kind)} changed")
    if meta.get("version") != current["version"]:
        reasons.append("the version= salt changed")
    old_args: dict[str, str] = meta.get("args", {})
    for name, digest in current["args"].items():
        if name in old_args and old_args[name] != digest:
            reasons.append(f"{argument} '{name}' differs")
        elif name not in old_args:
            reasons.append(f"{argument} '{name}' is new")
    for name in old_args:
        if name not in current["args"]:
            reasons.append(f"{argument} '{name}' is gone")
    old_extras: dict[str, str] = meta.get("extras", {})
    new_extras: dict[str, str] = current.get("extras", {})
    for label in sorted(set(old_extras) | set(new_extras)):
        if old_extras.get(label) != new_extras.get(label):
            if label in _SAID_IN_WORDS:
                reasons.append(f"{label} changed")
                continue
            reasons.append(f"{label} changed ({old_extras.get(label, 'none')} -> {new_extras.get(label, 'none')})")
    return reasons


def _describe(label: str, kind: str) -> str:
    if kind == "code":
        return f"function/class {label}"
    if kind == "package":
        return label
    if kind == "missing":
        return f"the undefined name {label}"
    return f"global {label}"


def current_description(fn: MemoizedFunction[Any], call: Call) -> dict[str, Any]:
    return {
        "own": call.own.hex(),
        "library": rules_digest(),
        "deps": {label: [kind, digest.hex()] for label, (kind, digest) in call.deps.parts.items()},
        "version": fn._version.hex(),
        "args": {name: digest.hex() for name, digest in call.arguments.items()},
        "extras": call.extras,
    }


def not_used(store: Store) -> str | None:
    """Return why the cache folder of ``store`` is not used (nothing read from it or stored in it), or None."""
    refused = store.refusal()
    if refused is None:
        return None
    return f"the cache folder {store.directory} is not used: {unusable_message(store.directory, refused)}"


def stored_as(store: Store, key: str) -> str:
    """Return the index key under which this process stores ``key``: with a secret, a key of that secret's own
    (a listed record's ``key``), so a record is told to be a call's by it, never by the call's key."""
    return store.row_key(key, store.signer())


def explain_call(fn: MemoizedFunction[Any], call: Call, as_miss: bool = False,
                 exclude: frozenset[str] = frozenset()) -> Explanation:
    """Return whether ``call`` would hit, and for a miss, what differs from the closest entries.

    ``as_miss`` explains a call that missed and has stored its result since: its own new
    entry is left out of the comparison, and so are the entries whose keys are in ``exclude``
    (stored by the same call).
    """
    name = fn.qualified_name
    unkeyed = sorted(call.deps.skipped)
    store = fn._store()
    notes = clock_notes(call.deps)
    unused = not_used(store)
    if unused is not None:  # what a call warned of once: the report says it each time it is asked
        return Explanation(name, False, unused, notes, unkeyed)
    try:
        record = None if as_miss else store.get(call.key)
    except CorruptRecord as exc:  # as a call meets it: it warns, and recomputes
        return Explanation(name, False, f"an entry for these arguments and code is stored, but it cannot be used "
                           f"({exc}): the call recomputes it", notes, unkeyed)
    if record is not None and record.header.conditioned and not record.header.expired():
        from ._memo import conditioned_entry

        try:
            served, conditions, why = conditioned_entry(store, call.key, record, first_only=False)
        except CorruptRecord as exc:
            return Explanation(name, False, f"an entry for these arguments and code is stored, but it cannot be "
                               f"used ({exc}): the call recomputes it", notes, unkeyed)
        if served is None:
            return Explanation(name, False, "an entry for these arguments and code is stored, but what it was "
                               "computed from is not as it was:", why + notes, unkeyed)
        record = served
        notes += _condition_notes(conditions)
    if record is not None:
        expires = record.header.expires
        if record.header.expired():
            if expires > time.time():
                return Explanation(name, False, f"the entry was stored at {human_time(record.header.created)}, "
                                   "in this machine's future: the writer's clock (or this one) is off, so its "
                                   "age cannot be told and it is recomputed", [], unkeyed)
            return Explanation(name, False, f"the entry expired at {human_time(expires)} "
                               f"({_ago(expires)}; ttl {(expires - record.header.created):g} s)", [], unkeyed)
        ttl = getattr(fn._options, "ttl", None)  # the one the code gives now ages entries stored without it too
        if record.header.stale_for(ttl):
            return Explanation(name, False, f"the entry was stored at {human_time(record.header.created)}, longer "
                               f"ago than the ttl of {ttl:g} s the code gives now (or in this machine's future): "
                               "it is recomputed", [], unkeyed)
        size = record.header.meta().get("size", 0)
        return Explanation(name, True, f"stored {_ago(record.header.created)}, computed in "
                           f"{record.header.duration:.3g} s, {human_bytes(size)}", notes, unkeyed)
    # After a miss, the run's own entry may be a variant of its key (one per folder or random state): asked
    # before the run, a variant stored earlier had its say (``before_compute``), so any left are the run's.
    entries, own = [], False
    row, excluded = stored_as(store, call.key), {stored_as(store, key) for key in exclude}
    for r in fn.entries():
        meta = r.header.meta()
        if is_marker(meta):
            continue
        if r.key == row or (as_miss and meta.get("variant_of") == call.key):
            own = True
        elif r.key not in excluded:
            entries.append((r, meta))
    if not entries:
        if not as_miss:
            return Explanation(name, False, f"nothing is cached for this function in {store.directory}", notes,
                               unkeyed)
        # The call's own entry is left out (it was not there to serve the call): saying "nothing is cached" would
        # read as if its result had not been stored.
        now = "its result is stored now" if own else "its result is not stored now (cleared since, or not written)"
        return Explanation(name, False, f"{FIRST_RUN} in {store.directory} before this call (its first run): {now}",
                           notes, unkeyed)
    current = current_description(fn, call)
    ranked = sorted(((differences(current, meta), r) for r, meta in entries),
                    key=lambda pair: (len(pair[0]), -pair[1].header.created))
    reasons, closest = ranked[0]
    if not reasons:
        reasons = ["the stored entry with these same ingredients was written under another key format"]
    summary = (f"no entry for these arguments and code; the closest of {len(entries)} stored "
               f"entr{'y' if len(entries) == 1 else 'ies'} (stored {_ago(closest.header.created)}) differs in:")
    return Explanation(name, False, summary, reasons + notes, unkeyed)


# What explain_last says of a call that found nothing of its function stored: its first run.
FIRST_RUN = "nothing was cached for this function"
NOT_STORED = "computed, and not stored"  # ... of one whose result was computed and refused (it says why)
# The reports that say what became of a run: its first, refused, raised, run unstored, with caching off or a folder
# that is not used.
_SAYS_WHAT_BECAME = (FIRST_RUN, NOT_STORED, "it raised ", "it runs each time, unstored", "the last call ran",
                     "the cache folder ")


def after_compute(fn: MemoizedFunction[Any], call: Call, report: Explanation) -> Explanation:
    """Return ``report``, on why ``call`` was not served, as said after it was computed: that it ran now, and
    whether its result is stored (the report alone reads as if the cache still lacked it)."""
    if report.hit or report.summary.startswith(_SAYS_WHAT_BECAME):
        return report  # says what became of the run already
    try:
        row = stored_as(fn._store(), call.key)
        stored = any(r.key == row or r.header.meta().get("variant_of") == call.key for r in fn.entries()
                     if not is_marker(r.header.meta()))
    except Exception:
        return report  # storage trouble: the call has reported it
    now = "its result is stored" if stored else "its result is not stored (cleared since, or not written)"
    return Explanation(report.name, False, f"computed now, and {now}. It was not served: {report.summary}",
                       report.reasons, report.unkeyed)


def clock_notes(deps: Dependencies) -> list[str]:
    """Return the note on where the code reads the clock (none where it does not)."""
    return [f"it reads the clock ({', '.join(deps.clock)}): its result does not change as time passes; "
            "ttl= recomputes it after a while"] if deps.clock else []


def _condition_notes(conditions: dict[str, Any]) -> list[str]:
    """Say what a served entry was checked against besides its key."""
    from ._random_state import describe_generators

    notes = []
    files = conditions.get("files", [])
    if files:
        names = ", ".join(entry[0] for entry in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        one = len(files) == 1
        notes.append(f"checked: the data file{'' if one else 's'} it read ({names}) {'is' if one else 'are'} unchanged")
    for entry in conditions.get("dirs", [])[:3]:
        notes.append(f"checked: folder {entry[0]} lists the same files")
    read = [entry for entry in conditions.get("links", []) if isinstance(entry, list) and len(entry) == 3]
    links = [entry[1] for entry in read if entry[0] != SAMEFILE]
    if links:
        names = ", ".join(links[:3]) + (f" and {len(links) - 3} more" if len(links) > 3 else "")
        notes.append(f"checked: where {names} lead{'s' if len(links) == 1 else ''} is unchanged (links it read)")
    compared = [entry[1] for entry in read if entry[0] == SAMEFILE]
    if compared:
        names = ", ".join(compared[:3]) + (f" and {len(compared) - 3} more" if len(compared) > 3 else "")
        one = len(compared) == 1
        notes.append(f"checked: {names} name{'s' if one else ''} the same file{'' if one else 's'} as when it ran "
                     "(compared by samefile)")
    written = conditions.get("written", [])
    if written:
        names = ", ".join(entry[0] for entry in written[:3]) + (f" and {len(written) - 3} more" if len(written) > 3
                                                                 else "")
        one = len(written) == 1
        notes.append(f"checked: the file{'' if one else 's'} it wrote ({names}) "
                     f"{'is as it left it' if one else 'are as it left them'}")
    if "cwd" in conditions:
        notes.append(f"checked: the current folder is {conditions['cwd']} (it started a process there, or read files "
                     "by absolute paths inside it)")
    if "environment" in conditions:
        notes.append(f"checked: the environment is the run's (it started a process, "
                     f"{spawn_condition(conditions['environment'])[1]})")
    if "home" in conditions:
        notes.append(f"checked: the home folder is {conditions['home']} (it read files by absolute paths inside it)")
    if "states" in conditions:
        notes.append(f"it draws from {describe_generators(sorted(conditions['states']))}: served for the state it "
                     "had, and left as the body would leave it")
    return notes


def caching_off(name: str) -> Explanation:
    """Return the report on a call made while caching was off: its body ran, nothing was read or stored."""
    return Explanation(name, False, "the last call ran with caching off (%memo off, memo.disabled() or "
                       "NOTEBOOK_MEMO_DISABLE): its body ran, and nothing was read or stored")


def before_compute(fn: MemoizedFunction[Any], call: Call, refreshed: str | None = None) -> Explanation | None:
    """Return why a call about to be computed is not served though its key has an entry; None if it has none.

    Asked before the run overwrites that entry, which ``explain_last`` could no longer see. ``refreshed``
    says what asked for the run when it was a refresh.
    """
    if call.absent:
        return None  # the lookup just made found nothing under the key
    try:
        record = fn._store().get(call.key)
        if record is None:
            return None
        if refreshed:
            return Explanation(fn.qualified_name, False, f"{refreshed} asked for it to be recomputed (the entry "
                               f"stored {_ago(record.header.created)} was not read)", [], sorted(call.deps.skipped))
        report = explain_call(fn, call)
    except Exception:
        return None  # storage trouble: the caller has reported it
    return None if report.hit else report  # a hit here: another process stored it meanwhile

