"""Options as users write them: TTL and size text, misspelt or foreign option names, functools vocabulary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from notebook_memo import memo
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
