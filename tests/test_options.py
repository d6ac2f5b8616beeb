"""Options as users write them: TTL and size text, misspelt or foreign option names, functools vocabulary."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest

from notebook_memo import ConfigurationError, Memoized, memo
from notebook_memo._config import parse_size, parse_ttl

# -- TTL text -------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl, seconds", [
    ("3600", 3600), ("90.5", 90.5), (" 45 ", 45),
    ("6 hours", 21600), ("6hours", 21600), ("1 hour", 3600), ("2 hrs", 7200),
    ("1 day", 86400), ("2 days", 172800), ("2 weeks", 1209600), ("1 wk", 604800),
    ("90 min", 5400), ("30 minutes", 1800), ("1 minute", 60), ("45 sec", 45), ("10 seconds", 10),
    ("250 ms", 0.25), ("1h30m", 5400), ("1 hour 30 minutes", 5400), ("1 hour, 30 minutes", 5400),
    ("1.5 h", 5400), ("6H", 21600), ("6h", 21600), ("7d", 604800), ("90s", 90),
    (12, 12), (0.5, 0.5), (timedelta(minutes=2), 120),
])
def test_ttl_reads_seconds_words_and_abbreviations(ttl: Any, seconds: float) -> None:
    assert parse_ttl(ttl) == seconds


@pytest.mark.parametrize("ttl", ["soon", "6 parsecs", "1 month", "h", "1h30", "30 minutes ago", "1,5h", ""])
def test_unreadable_ttl_lists_the_accepted_forms(ttl: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_ttl(ttl)
    message = str(caught.value)
    assert f"cannot read the TTL {ttl!r}" in message
    for form in ("3600", "timedelta", "'90s'", "'30 min'", "'6 hours'", "'1 day'", "'1h30m'"):
        assert form in message


@pytest.mark.parametrize("ttl", [0, -5, "0", "-5", "0s", "0 hours", timedelta(0), float("nan")])
def test_zero_negative_or_nan_ttl_is_an_error(ttl: Any) -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_ttl(ttl)


def test_ttl_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="ttl must be"):
        parse_ttl([60])  # type: ignore[arg-type]


def test_decorator_takes_ttl_in_words() -> None:
    @memo(ttl="2 days")
    def f(x: int) -> int:
        return x

    assert f._options.ttl == 172800


# -- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size, nbytes", [
    (1000, 1000), ("1000", 1000), ("5GB", 5 * 10**9), ("5 gb", 5 * 10**9), ("512MiB", 512 * 2**20),
    ("1.5 KB", 1500), ("2 TiB", 2 * 2**40), ("10k", 10_000),
])
def test_size_reads_bytes_and_units(size: Any, nbytes: int) -> None:
    assert parse_size(size) == nbytes


@pytest.mark.parametrize("size", ["lots", "5 parsecs", "-5GB", "GB", ""])
def test_unreadable_size_lists_the_accepted_forms(size: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(size)
    message = str(caught.value)
    assert f"cannot read the size {size!r}" in message
    for form in ("bytes", "'500MB'", "'5GB'", "'512MiB'"):
        assert form in message


def test_negative_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)


# -- unknown option names ---------------------------------------------------------------------


def _refusal(make: Any) -> str:
    with pytest.raises(TypeError) as caught:
        make()
    assert isinstance(caught.value, ConfigurationError)
    return str(caught.value)


def test_misspelt_option_names_it_and_suggests_the_nearest() -> None:
    message = _refusal(lambda: memo(tll=60))
    assert "memo() got an unknown option 'tll'; did you mean 'ttl'?" in message


@pytest.mark.parametrize("foreign, ours", [
    ("location", "cache_dir"), ("directory", "cache_dir"), ("cachedir", "cache_dir"), ("expire", "ttl"),
    ("ignore_args", "ignore"), ("exclude", "ignore"), ("mmap_mode", "mmap"),
])
def test_joblib_and_diskcache_names_point_to_ours(foreign: str, ours: str) -> None:
    message = _refusal(lambda: memo(**{foreign: "x"}))
    assert f"unknown option {foreign!r}" in message and f"use {ours!r}" in message


def test_maxsize_explains_the_size_limit_is_per_directory() -> None:
    message = _refusal(lambda: memo(maxsize=128))
    assert "unknown option 'maxsize'" in message and "configure(size_limit=" in message


def test_unrelated_option_lists_the_valid_ones() -> None:
    message = _refusal(lambda: memo(frobnicate=True))
    assert "unknown option 'frobnicate'" in message and "did you mean" not in message
    for name in ("ttl", "ignore", "version", "cache_dir", "files"):
        assert name in message


def test_batch_option_misspelt_or_foreign() -> None:
    assert "did you mean 'batch_size'?" in _refusal(lambda: memo.batch("texts", batchsize=10))
    assert "use 'cache_dir'" in _refusal(lambda: memo.batch("texts", location="/tmp/x"))
    assert "memo.batch() got an unknown option 'tll'; did you mean 'ttl'?" in _refusal(
        lambda: memo.batch("texts", tll=5))


def test_per_instance_and_cached_property_options() -> None:
    assert "memo.per_instance() got an unknown option 'tll'; did you mean 'ttl'?" in _refusal(
        lambda: memo.per_instance(tll=5))
    assert "use 'ttl'" in _refusal(lambda: memo.cached_property(expire=5))
    message = _refusal(lambda: memo.per_instance(cache_dir="/tmp/x"))
    assert "unknown option 'cache_dir'" in message and "in memory" in message and "@memo" in message


def test_option_names_come_from_the_signature_of_make_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _memo

    original = _memo.make_options

    def make_options(colour: str = "red", **options: Any) -> Any:
        return original(**options)

    make_options.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*inspect.signature(original).parameters.values(),
         inspect.Parameter("colour", inspect.Parameter.KEYWORD_ONLY, default="red")])
    monkeypatch.setattr(_memo, "make_options", make_options)

    @memo(colour="blue", ttl=5)
    def f(x: int) -> int:
        return x

    @memo.batch("xs", colour="blue")
    def g(xs: list[int]) -> list[int]:
        return xs

    assert f(1) == 1 and g([1]) == [1]
    assert "did you mean 'colour'?" in _refusal(lambda: memo(color="blue"))


# -- functools vocabulary ---------------------------------------------------------------------


def test_cache_clear_is_clear_as_lru_cache_spells_it() -> None:
    @memo
    def f(x: int) -> int:
        return x

    f(1)
    f(2)
    assert f.cache_clear() == 2
    assert not f.is_cached(1) and f.cache_info().entries == 0
    assert callable(getattr(Memoized, "cache_clear", None))


def test_cache_clear_on_batch_functions_and_methods() -> None:
    @memo.batch("xs")
    def double(xs: list[int]) -> list[int]:
        return [x * 2 for x in xs]

    class Scaler:
        @memo
        def scale(self, x: int) -> int:
            return x * 3

    double([1, 2, 3])
    Scaler().scale(1)
    assert double.cache_clear() == 3 and not double.is_cached([1])
    assert Scaler().scale.cache_clear() == 1


def test_cache_info_reads_like_lru_cache() -> None:
    @memo
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    f(2)
    info = f.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (1, 2, None, 2)
    hits, misses, entries, nbytes, saved = info  # the documented shape is kept
    assert (hits, misses, entries) == (1, 2, 2) and nbytes > 0 and saved >= 0
