"""Random generators: the global ones a body may draw from, and generator objects a key holds.

A global generator's state is read, digested and set through the library's own functions, never
imported by us. Seeding functions are wrapped once their library is loaded, so that a body that
seeds before it draws is known not to depend on the state it found.
"""

from __future__ import annotations

import array
import base64
import contextlib
import ctypes
import functools
import importlib
import struct
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import xxhash

from ._replaced import (
    READS,
    SEEDS,
    install,
    note_state_functions,
    note_state_objects,
    original_of,
    rebind_taken_earlier,
    replacing,
)

__all__ = ()


# -- global generators ----------------------------------------------------------------------------------------

# Frameworks that draw from the global ``random`` generator for their own bookkeeping, on threads of their
# own while a body runs on another: Dask's ``sizeof`` samples each task's result on a worker's event loop,
# tornado jitters its periodic callbacks, distributed jitters retries and picks peers. A body's run cannot
# tell their draws from its own (a state is compared before and after), so its entry would be tied to a state
# no other run meets. Each such module gets a generator of its own: its draws stay as random, and the global
# generator moves only when user code draws from it.
_FRAMEWORK_DRAWERS = ("dask.sizeof", "tornado.ioloop", "distributed.worker", "distributed.utils_comm",
                      "distributed.worker_state_machine", "distributed.scheduler", "distributed.client")
_isolated: set[str] = set()
_isolation_seen: list[tuple[int, str | None]] = [(-1, None)]  # modules_mark() at the last look


def modules_mark() -> tuple[int, str | None]:
    """Return what changes whenever a module is loaded: how many there are, and the last one loaded
    (a module that leaves as another arrives keeps the count, never the last name)."""
    modules = sys.modules
    while True:
        try:
            return len(modules), next(reversed(modules), None)
        except RecursionError:  # a RuntimeError too, and looking again would meet it again
            raise
        except RuntimeError:  # another thread loaded or dropped a module while we looked: look again
            continue


def _loaded_since(seen: list[tuple[int, str | None]]) -> bool:
    """Return whether a module was loaded since the last look that noted its mark in ``seen`` (and note it now)."""
    mark = modules_mark()
    if mark == seen[0]:
        return False
    seen[0] = mark
    return True


def isolate_framework_draws() -> None:
    """Give the loaded framework modules that draw from ``random`` for themselves a generator of their own."""
    if len(_isolated) == len(_FRAMEWORK_DRAWERS) or not _loaded_since(_isolation_seen):
        return  # all done, or no module loaded since the last look
    modules = sys.modules
    for name in _FRAMEWORK_DRAWERS:
        if name in _isolated:
            continue
        module = modules.get(name)
        if module is None:
            continue
        import random

        if getattr(module, "random", None) is random:
            module.random = random.Random()  # type: ignore[attr-defined]  # its calls (random.sample) read this
        _isolated.add(name)

def encode(value: Any) -> Any:
    """Return a JSON-safe form of a generator state (tuples, arrays and bytes tagged)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, tuple):
        return {"t": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"d": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(value).decode()}
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        if value.ndim == 0:
            return encode(value.item())
        return {"a": value.dtype.str, "s": list(value.shape), "b": base64.b64encode(value.tobytes()).decode()}
    raise TypeError(f"cannot record a generator state holding {type(value).__qualname__}")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "t" in value:
        return tuple(decode(v) for v in value["t"])
    if "d" in value:
        return {decode(k): decode(v) for k, v in value["d"]}
    raw = base64.b64decode(value["b"])
    if "a" in value:
        import numpy as np

        return np.frombuffer(raw, dtype=np.dtype(value["a"])).reshape(value["s"]).copy()
    return raw


def _numpy_get() -> Any:
    """Return np.random's state as a dict, whatever bit generator it uses (``set_bit_generator``)."""
    return _unwrapped(sys.modules["numpy"].random.get_state)(legacy=False)


def _is_mt(state: Any) -> bool:
    return isinstance(state, dict) and state.get("bit_generator") == "MT19937"


def _numpy_digest(state: Any) -> str:
    if _is_mt(state):
        inner = state["state"]
        rest = (inner["pos"], state.get("has_gauss"), state.get("gauss"))
        return xxhash.xxh3_128_hexdigest(inner["key"].tobytes() + repr(rest).encode())
    return xxhash.xxh3_128_hexdigest(repr(encode(state)).encode())


def _words_of(state: Any) -> bytes:
    """The Mersenne Twister words and position of a state, laid out as numpy keeps them."""
    inner = state["state"]
    return bytes(inner["key"].tobytes() + int(inner["pos"]).to_bytes(4, sys.byteorder, signed=True))


def _numpy_legacy() -> Any:
    """Return the RandomState np.random's functions draw from: the one its ``get_state`` is bound to.

    That is ``np.random.mtrand._rand`` until code binds that name to another RandomState; ``np.random.rand`` and
    ``get_state`` keep the one they were bound to at import, while ``np.random.seed`` and ``set_bit_generator``
    look the name up and act on the new one."""
    return _unwrapped(sys.modules["numpy"].random.get_state).__self__


def _seeds_numpy_legacy() -> bool:
    """Return whether ``np.random.seed`` (which seeds whatever ``np.random.mtrand._rand`` names) seeds the generator
    np.random's functions draw from."""
    try:
        return sys.modules["numpy"].random.mtrand._rand is _numpy_legacy()
    except Exception:
        return True  # a layout not known: taken as seeding it, as before


def _numpy_words() -> bytes | None:
    """Read np.random's Mersenne Twister words in place (2.5 kB, against get_state's 30 us), or None."""
    try:
        bit_generator = _numpy_legacy()._bit_generator
        if type(bit_generator).__name__ != "MT19937":
            return None
        return _in_place(_mt_window, bit_generator, _mt_state_address, 2500)
    except Exception:
        return None


def _in_place(slot: list[tuple[Any, memoryview] | None], owner: Any, locate: Callable[[Any], int],
              size: int) -> bytes:
    """Return a copy of the ``size`` bytes that ``locate(owner)`` says lie in ``owner``.

    Read through a view made once per owner object and kept in ``slot`` with it (which keeps the
    object, and so the bytes, alive): a fifth of ``ctypes.string_at``'s cost."""
    window = slot[0]
    if window is None or window[0] is not owner:
        view = memoryview((ctypes.c_char * size).from_address(locate(owner))).cast("B")
        slot[0] = window = (owner, view)
    return window[1].tobytes()


def _mt_state_address(bit_generator: Any) -> int:
    return bit_generator.ctypes.state_address  # type: ignore[no-any-return]


# The legacy global bit generator, and a view of its state (where it lies, read in place).
_mt_window: list[tuple[Any, memoryview] | None] = [None]


def _random_digest(state: Any) -> str:
    version, words, gauss = _random_state_of(state)
    return xxhash.xxh3_128_hexdigest(array.array("Q", words).tobytes() + repr((version, gauss)).encode())


class _RandomWords:
    """The state of Python's global ``random`` read in place (2.5 kB), turned into getstate()'s form only
    when it is needed (to digest it): a run that draws nothing costs two reads and a compare, not two
    625-int tuples built and compared."""

    __slots__ = ("gauss", "raw")

    def __init__(self, raw: bytes, gauss: Any) -> None:
        self.raw, self.gauss = raw, gauss

    def state(self) -> Any:
        index, *words = struct.unpack(_RANDOM_LAYOUT, self.raw)
        return sys.modules["random"].Random.VERSION, (*words, index), self.gauss


_RANDOM_LAYOUT = "=i624I"  # CPython's RandomObject after its object header: int index; uint32_t state[624]
_RANDOM_SIZE = struct.calcsize(_RANDOM_LAYOUT)
_random_offset: list[int | None] = []  # [offset of the words in the object] once checked, [None] if not usable


def _random_words() -> _RandomWords | None:
    """Read ``random``'s global Mersenne Twister in place, or None where its layout is not the one checked.

    The generator read is the one ``random.getstate`` (what the slower path reads) is bound to, as are
    ``random.random`` and the module's other functions: not whatever ``random._inst`` names now."""
    module = sys.modules["random"]
    inst = getattr(_unwrapped(getattr(module, "getstate", None)), "__self__", None)
    if inst is None or type(inst) is not module.Random:
        return None
    if not _random_offset:
        _random_offset.append(_check_random_layout(inst))
    offset = _random_offset[0]
    if offset is None:
        return None
    return _RandomWords(_in_place(_random_window, inst, _random_words_address, _RANDOM_SIZE), inst.gauss_next)


def _random_words_address(inst: Any) -> int:
    return id(inst) + _random_offset[0]  # type: ignore[operator]  # a checked layout's offset


# ``random``'s global generator, and a view of its words (where they lie in the object: read in place).
_random_window: list[tuple[Any, memoryview] | None] = [None]


def _check_random_layout(inst: Any) -> int | None:
    """Return where the words lie when reading them there gives what getstate() says (before and after a
    draw on a scratch generator), else None: the fast read is used only where it was seen to be right."""
    offset = object.__basicsize__
    try:
        probe = type(inst)(12345)
        for _ in range(2):
            raw = ctypes.string_at(id(probe) + offset, _RANDOM_SIZE)
            if _RandomWords(raw, probe.gauss_next).state() != probe.getstate():
                return None
            probe.random()
    except Exception:
        return None
    return offset


def _random_state_of(state: Any) -> Any:
    return state.state() if type(state) is _RandomWords else state


def _bytes_digest(state: Any) -> str:
    return xxhash.xxh3_128_hexdigest(state)


def _numpy_set(state: Any) -> None:
    """Set np.random's state; where it is one of another kind of bit generator than np.random has now (the body
    swapped one in: ``np.random.set_bit_generator``), a new one of that kind is swapped in first."""
    random = sys.modules["numpy"].random
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    if isinstance(kind, str) and type(_numpy_legacy()._bit_generator).__name__ != kind:
        bit_generator = getattr(random, kind, None)
        if not isinstance(bit_generator, type):
            raise ValueError(f"np.random cannot be given a state of the {kind!r} bit generator")
        _unwrapped(random.set_bit_generator)(bit_generator(0))  # seeded: its state is set next, no entropy taken
    _unwrapped(random.set_state)(state)


def _random_get() -> Any:
    return _unwrapped(sys.modules["random"].getstate)()


def _random_set(state: Any) -> None:
    _unwrapped(sys.modules["random"].setstate)(state)


def _torch_get() -> Any:
    return bytes(_unwrapped(sys.modules["torch"].random.get_rng_state)().numpy().tobytes())


def _torch_set(state: Any) -> None:
    torch = sys.modules["torch"]
    _unwrapped(torch.random.set_rng_state)(torch.frombuffer(bytearray(state), dtype=torch.uint8))


ENTROPY = "entropy"  # what a body that took randomness from the operating system is said to have seeded

# name -> (module that must be imported, get, set, digest of a state as got); never imported by us.
_GLOBAL_GENERATORS = {
    "numpy": ("numpy", _numpy_get, _numpy_set, _numpy_digest),
    "random": ("random", _random_get, _random_set, _random_digest),
    "torch": ("torch", _torch_get, _torch_set, _bytes_digest),
}
_GENERATOR_NAMES = {"numpy": "NumPy's global random state (np.random)", "random": "Python's random module",
                    "torch": "torch's default generator",
                    ENTROPY: "a new generator or random bytes (default_rng(), SeedSequence(), random.Random(), "
                             "uuid4(), secrets, os.urandom, os.getrandom, ssl.RAND_bytes)"}


# The digest of a global generator whose library is not loaded: a body that loads it starts it afresh, so a
# run that first loaded it is served only where it is still not loaded.
NOT_LOADED = "not loaded"


def global_states(names: Iterable[str] | None = None) -> dict[str, tuple[str, Any]]:
    """Return ``{generator: (digest, state)}`` for the global generators loaded in this process; with
    ``names``, those of them not loaded as ``(NOT_LOADED, None)``."""
    found: dict[str, tuple[str, Any]] = {}
    for name, state in snapshot(names).items():
        with contextlib.suppress(Exception):
            found[name] = (state_digest(name, state), state)
    for name in names or ():
        spec = _GLOBAL_GENERATORS.get(name)
        if spec is not None and spec[0] not in sys.modules:
            found[name] = (NOT_LOADED, None)
    return found


def state_digest(name: str, state: Any) -> str:
    """Return the digest of a global generator's state as ``snapshot`` read it."""
    return str(_GLOBAL_GENERATORS[name][3](state))


def snapshot(names: Iterable[str] | None = None, lazy: bool = False) -> dict[str, Any]:
    """Return the states of the global generators loaded now (or of ``names``), as read (digested
    only when needed). ``lazy``: ``random``'s may be read in place, for ``changed_since`` and
    ``state_digest`` only."""
    found = {}
    for name in _GLOBAL_GENERATORS if names is None else names:
        spec = _GLOBAL_GENERATORS.get(name)  # a name read from a record may be one this version lacks
        if spec is not None and spec[0] in sys.modules:
            try:  # (not contextlib.suppress: this runs before and after every body)
                if lazy and name == "random":
                    found[name] = _random_words() or spec[1]()
                elif lazy and name == "numpy":
                    found[name] = _numpy_state_now()
                else:
                    found[name] = spec[1]()
            except Exception:
                pass
    return found


def _numpy_state_now() -> Any:
    """Return np.random's state; the one read last time while its words (read in place) are the same, it
    held no cached Gaussian and nothing seeded or set it since (every run would otherwise pay get_state)."""
    last = _numpy_last
    if last[0] is not None and last[1] == _seed_generation[0] and ("numpy.random", "seed") in _wrapped_seeders \
            and ("numpy.random", "set_state") in _wrapped_seeders and _numpy_words() == last[0]:
        return last[2]
    generation = _seed_generation[0]
    state = _numpy_get()
    if _is_mt(state) and not state.get("has_gauss"):
        _numpy_last[:] = [_words_of(state), generation, state]
    return state


_numpy_last: list[Any] = [None, 0, None]  # np.random's words, the seeding generation and its state when read
_seed_generation = [0]  # bumped before and after every watched seeding call


def changed_since(before: dict[str, Any], seeded: Iterable[str] = (),
                  names: Iterable[str] | None = None) -> dict[str, Any]:
    """Return the states of the global generators (or of ``names``) that differ from ``before``, or
    were loaded since.

    ``seeded``: the generators whose state was set meanwhile through a watched seeding function.
    """
    found = {}
    for name in _GLOBAL_GENERATORS if names is None else names:
        spec = _GLOBAL_GENERATORS[name]
        if spec[0] not in sys.modules:
            continue
        old = before.get(name, _ABSENT)
        if old is not _ABSENT and name == "numpy" and name not in seeded and _numpy_unchanged(old):
            continue
        if type(old) is _RandomWords:
            now_words = _random_words()
            if now_words is not None and now_words.raw == old.raw and now_words.gauss == old.gauss:
                continue
            old = old.state()
        try:
            now = spec[1]()
        except Exception:
            continue
        if old is _ABSENT or not _SAME[name](old, now):
            found[name] = now
    return found


_ABSENT = object()


def _numpy_unchanged(old: Any) -> bool:
    """True when np.random's state is surely still ``old``, read cheaply: the same words, and ``old``
    held no cached Gaussian. A draw that leaves the words as they were only uses a cached Gaussian,
    and only setting the state (watched: the caller passes it as ``seeded``) can add one."""
    words = _numpy_last[0] if old is _numpy_last[2] else None  # the state read last: its words are at hand
    return _is_mt(old) and not old.get("has_gauss") and _numpy_words() == (words or _words_of(old))


def _numpy_same(old: Any, new: Any) -> bool:
    if _is_mt(old) and _is_mt(new):
        return bool(_words_of(old) == _words_of(new) and old.get("has_gauss") == new.get("has_gauss")
                    and old.get("gauss") == new.get("gauss"))
    return bool(encode(old) == encode(new))


_SAME: dict[str, Callable[[Any, Any], bool]] = {
    "numpy": _numpy_same, "random": lambda old, new: bool(old == new), "torch": lambda old, new: bool(old == new),
}


def set_global_states(states: dict[str, Any]) -> None:
    """Set global generators to recorded (encoded) states (loading the library, as the body did)."""
    for name, encoded in states.items():
        spec = _GLOBAL_GENERATORS.get(name)
        if spec is None:
            continue
        if spec[0] not in sys.modules:
            importlib.import_module(spec[0])
        spec[2](decode(encoded))


# Seeding a global generator: the functions people call, wrapped (once the library is loaded) so that
# a body that seeds before it draws is known not to depend on the state it found.
_SEEDERS = (("numpy", "numpy.random", "seed"), ("numpy", "numpy.random", "set_state"),
            ("numpy", "numpy.random", "set_bit_generator"), ("numpy", "numpy.random.mtrand", "set_bit_generator"),
            ("random", "random", "seed"), ("random", "random", "setstate"),
            ("torch", "torch", "manual_seed"), ("torch", "torch.random", "manual_seed"),
            ("torch", "torch", "set_rng_state"), ("torch", "torch.random", "set_rng_state"),
            ("torch", "torch", "seed"), ("torch", "torch.random", "seed"))
# Reading a global generator's state: a body that copies it (``r.setstate(random.getstate())``) depends on it
# as one that draws does, without changing it.
_READERS = (("numpy", "numpy.random", "get_state"), ("random", "random", "getstate"),
            ("torch", "torch", "get_rng_state"), ("torch", "torch.random", "get_rng_state"),
            # the legacy global's bit generator (its .state, a copy of it), and the seed torch's state was last set from
            ("numpy", "numpy.random", "get_bit_generator"), ("numpy", "numpy.random.mtrand", "get_bit_generator"),
            ("torch", "torch", "initial_seed"), ("torch", "torch.random", "initial_seed"))
# The global generator objects' own methods, and a class's, which no wrapper stands in front of (random._inst's
# are found from random.getstate and random.seed, the bound methods they are).
_OWN_METHODS = ((READS, "torch", "torch", "default_generator.get_state"),
                (READS, "torch", "torch", "default_generator.clone_state"),
                (READS, "torch", "torch", "default_generator.graphsafe_get_state"),
                (READS, "torch", "torch", "default_generator.initial_seed"),
                (SEEDS, "torch", "torch", "default_generator.set_state"),
                (SEEDS, "torch", "torch", "default_generator.manual_seed"),
                (SEEDS, "torch", "torch", "default_generator.seed"),
                (SEEDS, "numpy", "numpy.random.mtrand", "_rand.seed"),
                # the C method under random.Random.getstate: it reads any instance, random._inst among them (wrapped
                # too where its class allows: code that names it, or holds it as made, is keyed for it)
                (READS, "random", "_random", "Random.getstate"))
# Known by identity wherever keying meets one held since before it was wrapped (a dict item, a closure cell...).
note_state_functions([(SEEDS, *spec) for spec in _SEEDERS] + [(READS, *spec) for spec in _READERS]
                     + list(_OWN_METHODS))
# The global generator objects whose state a copy, a pickle or a private attribute reads past every wrapper
# (random._inst's goes through Random.getstate, wrapped: see _global_instance_reader).
note_state_objects([("numpy", "numpy.random.mtrand", "_rand", False), ("torch", "torch", "default_generator", False),
                    # its bit generator (np.random.get_bit_generator()): .state, .jumped() and .ctypes read it too
                    ("numpy", "numpy.random.mtrand", "_rand._bit_generator", True),
                    # the one np.random's functions are bound to, where code bound mtrand._rand to another since
                    ("numpy", "numpy.random", "get_state.__self__", False),
                    ("numpy", "numpy.random", "get_state.__self__._bit_generator", True)],
                   rebound=("numpy.random.", ["_rand", "_rand._bit_generator"]))
_wrapped_seeders: set[tuple[str, str]] = set()  # seeding functions and readers
_modules_seen: list[tuple[int, str | None]] = [(-1, None)]  # modules_mark() when watch_seeding last looked


_seeding_lock = threading.Lock()


def _seeder(generator: str, attr: str, original: Any, on_seed: Callable[[str, bool], None]) -> Any:
    by_entropy = attr == "seed"  # np.random.seed(), random.seed(), torch.seed(): from the OS's entropy

    # np.random.seed and set_bit_generator act on whatever np.random.mtrand._rand names now, which may not be what
    # np.random draws from
    looks_up = generator == "numpy" and attr in ("seed", "set_bit_generator")

    @functools.wraps(original)
    def seed(*args: Any, **kwargs: Any) -> Any:
        given = args[0] if args else next(iter(kwargs.values()), None)
        if not looks_up or _seeds_numpy_legacy():
            on_seed(generator, by_entropy and given is None)
        _seed_generation[0] += 1
        try:
            return original(*args, **kwargs)
        finally:
            _seed_generation[0] += 1

    return replacing(seed, original)


def _reader(generator: str, original: Any, on_read: Callable[[str], None]) -> Any:
    @functools.wraps(original)
    def get_state(*args: Any, **kwargs: Any) -> Any:
        on_read(generator)
        return original(*args, **kwargs)

    return replacing(get_state, original)


def watch_seeding(on_seed: Callable[[str, bool], None], on_read: Callable[[str], None],
                  is_users: Callable[[types.ModuleType], bool]) -> None:
    """Wrap the seeding functions of the libraries loaded now (once each) to call
    ``on_seed(generator, from_entropy)`` before they run, and their state readers to call ``on_read(generator)``.

    A name the user's code bound to one before (``from random import seed`` in a notebook's first cell; a module
    of the user's judged by ``is_users``) is bound to the wrapper too: through the original, a body that seeds
    before it draws would be taken for one that draws from the state it found, and miss after every restart."""
    if len(_wrapped_seeders) == len(_SEEDERS) + len(_READERS) + 1 or not _loaded_since(_modules_seen):
        return  # all wrapped (and random.Random.getstate), or no module loaded since the last look
    installed: dict[int, tuple[Any, Any]] = {}
    random = sys.modules.get("random")
    if random is not None and ("random", "Random.getstate") not in _wrapped_seeders:
        with _seeding_lock:
            if ("random", "Random.getstate") not in _wrapped_seeders:
                _wrapped_seeders.add(("random", "Random.getstate"))
                inst = getattr(_unwrapped(getattr(random, "getstate", None)), "__self__", None)
                if isinstance(inst, random.Random):
                    for owner in _getstate_owners(random.Random):
                        original = vars(owner)["getstate"]
                        wrapper = _global_instance_reader(original, inst, on_read)
                        try:
                            install(owner, "getstate", wrapper)
                        except TypeError:  # a C class made immutable: code that names its method is keyed for it
                            continue
                        installed[id(original)] = (original, wrapper)  # G = random.Random.getstate, taken earlier
    for generator, module_name, attr in (*_SEEDERS, *_READERS):
        module = sys.modules.get(module_name)
        if module is None or (module_name, attr) in _wrapped_seeders:
            continue
        original = getattr(module, attr, None)
        if callable(original):
            with _seeding_lock:
                if (module_name, attr) not in _wrapped_seeders:
                    wrapper = _seeder(generator, attr, original, on_seed) if attr not in _READ_NAMES else \
                        _reader(generator, original, on_read)
                    install(module, attr, wrapper)
                    _wrapped_seeders.add((module_name, attr))
                    installed[id(original)] = (original, wrapper)
    if installed:
        rebind_taken_earlier(installed, is_users)


_READ_NAMES = frozenset(attr for _, _, attr in _READERS)


def _getstate_owners(cls: type) -> list[type]:
    """Return the classes in ``cls``'s MRO that define ``getstate``: ``random.Random``'s, and the C method of
    ``_random.Random`` beneath it, which ``super(random.Random, random._inst).getstate()`` or
    ``type(random._inst).__mro__[1].getstate(random._inst)`` reach past the first."""
    return [klass for klass in cls.__mro__ if "getstate" in vars(klass)]


def _global_instance_reader(original: Any, inst: Any, on_read: Callable[[str], None]) -> Any:
    """Wrap a ``getstate`` of ``random.Random``'s MRO to call ``on_read("random")`` when it reads the global generator
    ``inst``: ``copy.copy``, ``copy.deepcopy`` and pickle of ``random._inst`` read its state through it
    (``__reduce__``), as do ``random.Random.getstate(random._inst)``, the instance found by ``getattr`` or ``vars``,
    and the C method reached by ``super()`` or through the MRO."""

    @functools.wraps(original)
    def getstate(self: Any) -> Any:
        if self is inst:
            on_read("random")
        return original(self)

    return replacing(getstate, original)


# Randomness taken from the operating system without a seed: os.urandom (uuid4 reads it) and os.getrandom,
# random's own reference to os.urandom (SystemRandom: secrets, and NumPy's SeedSequence() and default_rng()
# through secrets), a random.Random seeded with None (random.Random()), and OpenSSL's ssl.RAND_bytes. Wrapped once,
# to call ``on_entropy`` before they run.
_entropy_watched: set[str] = set()
_ENTROPY_MODULES = ("os", "random", "ssl")
_entropy_seen: list[tuple[int, str | None]] = [(-1, None)]  # modules_mark() when watch_entropy last looked


def entropy_sources() -> dict[Any, str]:
    """Return the functions that take randomness from the operating system, as they were before any was wrapped
    (a name bound to one earlier, ``from os import urandom``, escapes the wrapper), with their names."""
    import os

    found = {_unwrapped(os.urandom): "os.urandom"}
    if hasattr(os, "getrandom"):
        found[_unwrapped(os.getrandom)] = "os.getrandom"
    ssl = sys.modules.get("ssl")
    if ssl is not None and hasattr(ssl, "RAND_bytes"):
        found[_unwrapped(ssl.RAND_bytes)] = "ssl.RAND_bytes"
    return found


def watch_entropy(on_entropy: Callable[[], None]) -> None:
    """Wrap the sources of the operating system's randomness (once each) to call ``on_entropy()`` first."""
    if len(_entropy_watched) == len(_ENTROPY_MODULES) or not _loaded_since(_entropy_seen):
        return  # all wrapped, or no module loaded since the last look (random and ssl may come later)
    with _seeding_lock:
        if "os" not in _entropy_watched:
            import os

            install(os, "urandom", _from_entropy(os.urandom, on_entropy))
            if hasattr(os, "getrandom"):  # Linux only
                install(os, "getrandom", _from_entropy(os.getrandom, on_entropy))
            _entropy_watched.add("os")
        ssl = sys.modules.get("ssl")
        if ssl is not None and "ssl" not in _entropy_watched:
            if callable(getattr(ssl, "RAND_bytes", None)):
                install(ssl, "RAND_bytes", _from_entropy(ssl.RAND_bytes, on_entropy))
            _entropy_watched.add("ssl")
        module = sys.modules.get("random")
        if module is not None and "random" not in _entropy_watched:
            if callable(getattr(module, "_urandom", None)):
                install(module, "_urandom", _from_entropy(module._urandom, on_entropy))
            install(module.Random, "seed", _seeded_from_entropy(module.Random.seed, on_entropy))
            _entropy_watched.add("random")


def _from_entropy(original: Any, on_entropy: Callable[[], None]) -> Any:
    @functools.wraps(original)
    def urandom(*args: Any, **kwargs: Any) -> Any:
        on_entropy()
        return original(*args, **kwargs)

    return replacing(urandom, original)


def _seeded_from_entropy(original: Any, on_entropy: Callable[[], None]) -> Any:
    @functools.wraps(original)
    def reseed(self: Any, *args: Any, **kwargs: Any) -> Any:  # not "seed": that is a watched seeding call's wrapper
        if (args[0] if args else kwargs.get("a")) is None:
            on_entropy()
        return original(self, *args, **kwargs)

    return replacing(reseed, original)


def _unwrapped(fn: Any) -> Any:
    """Return the function our wrapper ``fn`` replaced, else ``fn``: a method bound to another generator
    (``random.getstate = other.getstate``, whose class's getstate is ours) is left as it is, though it answers for
    its function's attributes."""
    return original_of(fn) if type(fn) is types.FunctionType else fn


def describe_generators(names: Iterable[str]) -> str:
    return ", ".join(_GENERATOR_NAMES.get(n, n) for n in names)


# -- generator objects (arguments, globals, attributes) ----------------------------------------------------

def _np_generator_get(g: Any) -> Any:
    return _bit_generator_get(g.bit_generator)


def _np_generator_set(g: Any, state: Any) -> None:
    _bit_generator_set(g.bit_generator, state)


_SPAWNED = "spawned"  # tags a bit generator's state kept with its seed sequence's count of children


def _bit_generator_get(bit_generator: Any) -> Any:
    """Return a NumPy bit generator's state, with the count of children its seed sequence spawned
    (``Generator.spawn`` draws nothing: it only moves that count)."""
    spawned = _spawned(getattr(bit_generator, "seed_seq", None))
    state = bit_generator.state
    return state if spawned is None else (_SPAWNED, spawned, state)


def _bit_generator_set(bit_generator: Any, state: Any) -> None:
    if isinstance(state, tuple) and len(state) == 3 and state[0] == _SPAWNED:
        _seed_sequence_set(bit_generator.seed_seq, state[1])
        state = state[2]
    bit_generator.state = state


def _spawned(seed_sequence: Any) -> int | None:
    count = getattr(seed_sequence, "n_children_spawned", None)
    return count if isinstance(count, int) else None


def _seed_sequence_set(seed_sequence: Any, spawned: int) -> None:
    """Spawn (and drop) children until ``seed_sequence`` has spawned ``spawned``: the count cannot be set, and it
    only grows (a hit finds it at the count before the run, never past the count after)."""
    now = _spawned(seed_sequence)
    if now is not None and spawned > now:
        seed_sequence.spawn(spawned - now)


def _torch_generator_get(g: Any) -> Any:
    return bytes(g.get_state().numpy().tobytes())


def _torch_generator_set(g: Any, state: Any) -> None:
    torch = sys.modules["torch"]
    g.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))


_GENERATOR_OBJECTS: dict[str, tuple[Any, Any]] = {
    "numpy.random._generator.Generator": (_np_generator_get, _np_generator_set),
    "numpy.random.mtrand.RandomState": (lambda g: g.get_state(), lambda g, s: g.set_state(s)),
    "numpy.random.bit_generator.BitGenerator": (_bit_generator_get, _bit_generator_set),
    "numpy.random.bit_generator.SeedSequence": (_spawned, _seed_sequence_set),
    "random.Random": (lambda g: g.getstate(), lambda g, s: g.setstate(s)),
    "torch._C.Generator": (_torch_generator_get, _torch_generator_set),
    "torch.Generator": (_torch_generator_get, _torch_generator_set),
}


_kinds: weakref.WeakKeyDictionary[type, str | None] = weakref.WeakKeyDictionary()  # never keeps a class alive


def _generator_kind(value: Any) -> str | None:
    cls = type(value)
    try:
        return _kinds[cls]
    except KeyError:
        pass
    kind = None
    for klass in cls.__mro__:
        name = f"{klass.__module__}.{klass.__qualname__}"
        if name in _GENERATOR_OBJECTS:
            kind = name
            break
    with contextlib.suppress(TypeError):
        _kinds[cls] = kind
    return kind


def shared(generators: list[Any]) -> list[bytes]:
    """Return a key part saying which generators met while keying a call are one object, if any are.

    ``f([g, g])`` draws twice from one stream; ``f([g1, g2])`` with equal states, once from each.
    """
    first: dict[int, int] = {}
    pairs = [f"{i}={first.setdefault(id(g), i)}" for i, g in enumerate(generators)]
    repeated = [pair for pair in pairs if pair.split("=")[0] != pair.split("=")[1]]
    return [("generators " + ",".join(repeated)).encode()] if repeated else []


def numbered(generators: list[Any]) -> dict[str, Any]:
    """Return generator objects met while keying a call, each once, labelled by the order met."""
    seen: set[int] = set()
    unique = [g for g in generators if not (id(g) in seen or seen.add(id(g)))]  # type: ignore[func-returns-value]
    return {f"#{i}": g for i, g in enumerate(unique)}


def object_states(generators: dict[str, Any]) -> dict[str, Any]:
    """Return the encoded states of generator objects (arguments, globals, attributes)."""
    states = {}
    for label, g in generators.items():
        kind = _generator_kind(g)
        if kind is not None:
            with contextlib.suppress(Exception):
                states[label] = encode(_GENERATOR_OBJECTS[kind][0](g))
    return states


def set_object_states(generators: dict[str, Any], states: dict[str, Any]) -> None:
    """Advance generator objects to the states the body left them in."""
    for label, encoded in states.items():
        g = generators.get(label)
        kind = _generator_kind(g) if g is not None else None
        if kind is not None:
            _GENERATOR_OBJECTS[kind][1](g, decode(encoded))
