from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keel.features.imports.csv_records import NotUtf8Error, Record, csv_records


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _records(data: bytes, size: int = 1) -> list[Record]:
    return [record async for record in csv_records(_chunks(data, size))]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
async def test_records_survive_any_chunking(size: int) -> None:
    data = 'sku,desc\nA,"two\nlines, and ""quotes"""\r\nB,ümlaut\n\nC,last'.encode()
    records = await _records(data, size)
    assert [r.fields for r in records] == [
        ["sku", "desc"],
        ["A", 'two\nlines, and "quotes"'],
        ["B", "ümlaut"],
        ["C", "last"],
    ]
    assert [r.number for r in records] == [1, 2, 3, 5]  # the blank record 4 is skipped
    assert records[-1].consumed == len(data)


async def test_a_byte_order_mark_is_not_part_of_the_header() -> None:
    records = await _records("\ufeffsku,name\n".encode(), 4)
    assert records[0].fields == ["sku", "name"]


async def test_bytes_that_are_not_utf8_raise() -> None:
    with pytest.raises(NotUtf8Error):
        await _records(b"sku,name\nA,caf\xe9\n", 4)


async def test_a_file_ending_inside_a_character_raises() -> None:
    with pytest.raises(NotUtf8Error):
        await _records("sku\né".encode()[:-1], 2)


async def test_an_unclosed_quote_is_an_error_record_not_a_crash() -> None:
    records = await _records(b'sku,name\nA,"never closed\n', 3)
    assert records[0].fields == ["sku", "name"]
    assert records[1].error is not None
    assert records[1].fields == []
