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


@pytest.mark.parametrize("size", [7, 4096])
async def test_a_refused_record_takes_all_its_lines_and_no_more(size: int) -> None:
    long_field = "y" * 140_000  # over the csv module's field size limit
    data = f'sku,desc\nA,"{long_field}\n,"")\nmore, lines"\nB,"b"\nC,c\n'.encode()
    records = await _records(data, size)
    assert [(r.number, r.fields, r.error is None) for r in records] == [
        (1, ["sku", "desc"], True),
        (2, [], False),
        (3, ["B", "b"], True),
        (4, ["C", "c"], True),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 4096])
@pytest.mark.parametrize(
    "data",
    [b"sku,name\nA,caf\xe9\n", "\ufeffsku,é\n".encode() + b"\xff", "sku\né".encode()[:-1]],
    ids=["latin-1", "after-a-bom-and-a-two-byte-character", "ends-inside-a-character"],
)
async def test_the_error_names_the_offset_of_the_first_bad_byte(data: bytes, size: int) -> None:
    with pytest.raises(UnicodeDecodeError) as found:
        data.decode("utf-8")  # a BOM is valid UTF-8, so its offsets are the file's
    bad = found.value.start
    with pytest.raises(NotUtf8Error, match=rf"invalid byte at offset {bad}\)$"):
        await _records(data, size)


@pytest.mark.parametrize("size", [1, 5, 64, 4096])
async def test_lines_read_together_give_the_records_read_one_by_one(size: int) -> None:
    """Whole chunks of lines go to one csv reader; where that reader would read differently
    from record-by-record (a quote inside an unquoted field opens a quoted one for it, a
    stray carriage return), the chunk is read record by record again, whatever its size."""
    data = b'h1,h2\nA,ab"c,"d\nB,x\n\nC,"quoted, comma"\nD,car\rriage\nE,"""q"""\r\n  \nF,end\n'
    records = await _records(data, size)
    assert [(r.number, r.fields, r.error is not None) for r in records] == [
        (1, ["h1", "h2"], False),
        (2, [], True),  # the quoted field never ends within its own line
        (3, ["B", "x"], False),
        (5, ["C", "quoted, comma"], False),
        (6, [], True),  # a carriage return inside an unquoted field
        (7, ["E", '"q"'], False),
        (8, ["  "], False),
        (9, ["F", "end"], False),
    ]
