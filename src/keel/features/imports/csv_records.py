"""CSV records from a stream of bytes, decoded and parsed as they arrive.

The csv module wants a synchronous iterator of lines, and a quoted field may span lines; so
lines are grouped into whole records here first (a record ends at a newline outside quotes,
i.e. after an even number of `"`), and the parser is only asked for a record once all of
its lines are in. Nothing but the current record is held in memory.
"""

from __future__ import annotations

import codecs
import csv
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass


class NotUtf8Error(ValueError):
    """The bytes are not UTF-8 text."""


@dataclass(frozen=True, slots=True)
class Record:
    number: int  # 1-based; the header is record 1
    fields: list[str]
    error: str | None  # the record could not be parsed (bad quoting)
    consumed: int  # bytes of the file read so far


class _Lines(Iterator[str]):
    def __init__(self) -> None:
        self.pending: deque[str] = deque()
        self.complete = 0  # whole records waiting in `pending`
        self._carry = ""
        self._quotes = 0  # quote characters in the lines of the record being assembled

    def __next__(self) -> str:
        if not self.pending:
            raise StopIteration
        return self.pending.popleft()

    def take(self, text: str) -> None:
        parts = (self._carry + text).split("\n")
        self._carry = parts.pop()
        for part in parts:
            self.pending.append(part + "\n")
            self._quotes += part.count('"')
            if self._quotes % 2 == 0:
                self.complete += 1
                self._quotes = 0

    def finish(self) -> None:
        """The last record may lack a newline, or (malformed) its closing quote."""
        if self._carry:
            self.pending.append(self._carry)
            self._carry = ""
        if self.pending:
            self.complete += 1


async def csv_records(chunks: AsyncIterable[bytes]) -> AsyncIterator[Record]:
    """Every non-blank record in order; raises NotUtf8Error on bytes that are not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    lines = _Lines()
    reader = csv.reader(lines, strict=True)
    consumed = 0
    number = 0

    def parsed() -> Iterator[Record]:
        nonlocal number
        while lines.complete:
            lines.complete -= 1
            number += 1
            try:
                fields = next(reader)
            except csv.Error as exc:
                yield Record(number, [], f"not valid CSV: {exc}", consumed)
                continue
            except StopIteration:
                return
            if fields:
                yield Record(number, fields, None, consumed)

    async for chunk in chunks:
        try:
            lines.take(decoder.decode(chunk))
        except UnicodeDecodeError as exc:
            offset = consumed + exc.start
            raise NotUtf8Error(f"The file is not UTF-8 text (invalid byte at {offset})") from None
        consumed += len(chunk)
        for record in parsed():
            yield record
    try:
        lines.take(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        raise NotUtf8Error("The file is not UTF-8 text (it ends inside a character)") from None
    lines.finish()
    for record in parsed():
        yield record
