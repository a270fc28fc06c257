from __future__ import annotations

import pytest

from keel.core.errors import RangeNotSatisfiableError, UnsupportedMediaTypeError
from keel.features.files.naming import content_disposition, sanitize_filename
from keel.features.files.ranges import parse_range
from keel.features.files.sniffing import accepted_type, detect
from tests.features.files.support import PNG

ALLOWED = ["image/png", "text/csv", "text/plain"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bad\x00na\x1bme\r\n.png", "badname.png"),
        ("\u202ecod.exe", "\u202ecod.exe"),  # bidi marks are not control characters; kept
        (".hidden", "hidden"),
        ("  spaced  ", "spaced"),
        (None, "file"),
        ("é" * 300, "é" * 100),
    ],
)
def test_sanitize_filename(raw: str | None, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_content_disposition_has_an_ascii_fallback_and_the_exact_name() -> None:
    header = content_disposition('naïve "quote".png')
    assert header.startswith('attachment; filename="na_ve _quote_.png"')
    assert "filename*=UTF-8''na%C3%AFve%20%22quote%22.png" in header


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=5-3", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError) as caught:
        parse_range(header, 100)
    assert caught.value.headers["Content-Range"] == "bytes */100"


def test_detect_text_cut_inside_a_character() -> None:
    assert detect("abcé".encode()[:-1]) == "text/plain"
    assert detect(b"abc\xff\xfe") is None
    assert detect(PNG) == "image/png"


def test_declared_text_type_is_kept_for_text() -> None:
    assert accepted_type("text/csv; charset=utf-8", b"a,b\n", ALLOWED) == "text/csv"
    assert accepted_type("", b"a,b\n", ALLOWED) == "text/plain"
    with pytest.raises(UnsupportedMediaTypeError):
        accepted_type("image/png", b"a,b\n", ALLOWED)


def test_declared_type_contradicted_by_bytes() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        accepted_type("text/csv", PNG, ALLOWED)
