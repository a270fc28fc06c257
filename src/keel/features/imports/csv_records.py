"""CSV records from a stream of bytes, decoded and parsed as they arrive.

The csv module wants a synchronous iterator of lines, and a quoted field may span lines; so
lines are grouped into whole records here first (a record ends at a newline outside quotes,
i.e. after an even number of `"`), and the parser is given one record's lines at a time. A
record the parser refuses (bad quoting, a field over the csv module's size limit) is an error
record and the rest of its lines are dropped with it, so the records after it are read from
their own first line, never from the middle of the broken one. Nothing but the current chunk's
records is held in memory.

Most files have no record spanning lines. When every line a chunk completes has an even
number of quotes (so each is a record by itself, as above), the lines go to one csv reader
together (a `_Block`), which costs far less per record than a reader fed one record at a
time; if that reader fails, or reads a record across lines (a quote inside an unquoted field
opens one for the csv module, not for the grouping above), the block is read again record by
record, so the outcome is the same as without the shortcut.
"""

from __future__ import annotations

import codecs
import csv
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import NamedTuple

BOM = codecs.BOM_UTF8


class NotUtf8Error(ValueError):
    """The bytes are not UTF-8 text."""


class Utf8Stream:
    """Decodes chunks of UTF-8 (a leading byte order mark dropped) and, on the first invalid
    byte, raises NotUtf8Error naming its offset from the start of the file."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._consumed = 0  # bytes handed to decode() so far
        self._bom_pending = True  # the first bytes may still turn out to be a BOM
        self._head = b""

    def decode(self, chunk: bytes, *, final: bool = False) -> str:
        start = self._consumed  # the file offset of chunk[0]
        self._consumed += len(chunk)
        if self._bom_pending:
            self._head += chunk
            if len(self._head) < len(BOM) and BOM.startswith(self._head) and not final:
                return ""
            chunk, start, self._head, self._bom_pending = self._head, 0, b"", False
            if chunk.startswith(BOM):
                chunk, start = chunk[len(BOM) :], len(BOM)
        buffered = len(self._decoder.getstate()[0])  # an unfinished character's first bytes
        try:
            return self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            offset = start - buffered + exc.start
            raise NotUtf8Error(
                f"The file is not UTF-8 text (an invalid byte at offset {offset})"
            ) from None


@dataclass(frozen=True, slots=True)
class _Block:
    """Lines of single-line records (no newline kept), read by one csv reader."""

    lines: list[str]


class _Lines(Iterator[str]):
    """Whole records of lines; the csv reader reads only the lines of the current record."""

    def __init__(self) -> None:
        self.records: deque[list[str] | _Block] = deque()  # complete records, waiting
        self._current: deque[str] = deque()  # the record the reader is parsing
        self._assembling: list[str] = []
        self._carry = ""
        self._quotes = 0  # quote characters in the lines of the record being assembled

    def __next__(self) -> str:
        if not self._current:
            raise StopIteration
        return self._current.popleft()

    def start(self, record: list[str]) -> None:
        """Hand a record to the reader (dropping what is left of the last)."""
        self._current = deque(record)

    def take(self, text: str) -> None:
        parts = (self._carry + text).split("\n")
        self._carry = parts.pop()
        if not self._assembling and all(part.count('"') % 2 == 0 for part in parts):
            if parts:
                self.records.append(_Block(parts))
            return
        for part in parts:
            self._assembling.append(part + "\n")
            self._quotes += part.count('"')
            if self._quotes % 2 == 0:
                self.records.append(self._assembling)
                self._assembling = []
                self._quotes = 0

    def finish(self) -> None:
        """The last record may lack a newline, or (malformed) its closing quote."""
        if self._carry:
            self._assembling.append(self._carry)
            self._carry = ""
        if self._assembling:
            self.records.append(self._assembling)
            self._assembling = []


def _read_block(block: _Block) -> list[list[str]] | None:
    """The block's records, or None unless the csv reader read each line as one record."""
    try:
        rows = list(csv.reader(block.lines, strict=True))
    except csv.Error:
        return None
    return rows if len(rows) == len(block.lines) else None


class Record(NamedTuple):  # a tuple: a million of them cost far less to make than objects
    number: int  # 1-based; the header is record 1
    fields: list[str]
    error: str | None  # the record could not be parsed (bad quoting)
    consumed: int  # bytes of the file read so far


async def csv_records(chunks: AsyncIterable[bytes]) -> AsyncIterator[Record]:
    """Every non-blank record in order; raises NotUtf8Error on bytes that are not UTF-8."""
    text = Utf8Stream()
    lines = _Lines()
    reader = csv.reader(lines, strict=True)
    consumed = 0
    number = 0

    def parsed() -> Iterator[Record]:
        nonlocal number
        while lines.records:
            record = lines.records.popleft()
            if isinstance(record, _Block):
                rows = _read_block(record)
                if rows is None:  # record by record, as if there were no shortcut
                    lines.records.extendleft(reversed([[line + "\n"] for line in record.lines]))
                    continue
                for fields in rows:
                    number += 1
                    if fields:
                        yield Record(number, fields, None, consumed)
                continue
            number += 1
            lines.start(record)
            try:
                fields = next(reader)
            except csv.Error as exc:
                yield Record(number, [], f"not valid CSV: {exc}", consumed)
                continue
            except StopIteration:  # pragma: no cover - a record always has a line
                continue
            if fields:
                yield Record(number, fields, None, consumed)

    async for chunk in chunks:
        lines.take(text.decode(chunk))
        consumed += len(chunk)
        for record in parsed():
            yield record
    lines.take(text.decode(b"", final=True))
    lines.finish()
    for record in parsed():
        yield record
