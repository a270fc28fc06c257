"""The product CSV import: file check, row validation, batched upserts, a result.

Two passes over the stream. The first only decodes: a file that is not UTF-8 or lacks a
header column fails before anything is written. The second validates each row with the
product schema's rules (keel.features.imports.rows) and upserts by SKU in batches, each batch
its own short transaction, so progress is visible, SQLite's single writer is never held for
minutes, and running the import again (a retry, a worker that took over from a dead one)
converges on the same products. Rows that fail validation are skipped and reported (row,
column, message).

On PostgreSQL the whole import holds one connection: each batch is COPYed into that
session's temporary staging table and upserted from it in SQL, in one transaction, so a batch
is either all in `products` or not at all (keel.features.catalog.repository). On SQLite a
batch is one executemany upsert.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.cache import ReadCache
from keel.core.database import Database, committing
from keel.features.catalog import service as catalog
from keel.features.imports.csv_records import NotUtf8Error, Record, Utf8Stream, csv_records
from keel.features.imports.rows import Fields, ProductRow, RowError, product_row

COLUMNS = ("sku", "name", "description", "price", "currency", "stock", "is_active")


class MalformedFileError(ValueError):
    """The file as a whole cannot be imported (encoding, header); nothing was changed."""


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "errors": self.errors,
            "errors_truncated": self.errors_truncated,
        }


Progress = Callable[[int], Awaitable[None]]
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def _header(fields: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in fields]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise MalformedFileError(f"The header is missing the columns: {', '.join(missing)}")
    return {column: names.index(column) for column in COLUMNS}


async def check_file(chunks: AsyncIterable[bytes]) -> None:
    """Raise MalformedFileError unless the whole file is UTF-8 with a complete header."""
    text = Utf8Stream()
    first_line: str | None = None
    head = ""
    try:
        async for chunk in chunks:
            decoded = text.decode(chunk)
            if first_line is None:
                head += decoded
                if "\n" in head:
                    first_line = head.split("\n", 1)[0]
        head += text.decode(b"", final=True)
    except NotUtf8Error as exc:
        raise MalformedFileError(str(exc)) from None
    line = head if first_line is None else first_line
    if not line.strip():
        raise MalformedFileError("The file is empty; it needs a header row")
    _header(next(csv.reader([line])))


@asynccontextmanager
async def _transactions(database: Database) -> AsyncIterator[Transaction]:
    """Transactions for the batches: on PostgreSQL all on one connection (its staging table),
    dropped at the end; on SQLite each from the pool, as its single writer wants."""
    if database.dialect != "postgresql":
        yield database.transaction
        return
    async with database.engine.connect() as connection:

        @asynccontextmanager
        async def transaction() -> AsyncIterator[AsyncSession]:
            async with database.sessionmaker(bind=connection) as session, committing(session):
                yield session

        async def release() -> None:
            async with transaction() as session:
                await catalog.end_import(session)

        try:
            yield transaction
        except BaseException:
            with suppress(Exception):  # the table goes with the connection anyway
                await release()
            raise
        await release()


class _Importer:
    """Validates records into a batch while the batch before it is written.

    Writing a batch is mostly waiting for the database; checking the next one is Python's
    work. One writer task at a time, started when a batch is complete and awaited before the
    next one starts, so batches are written in order and one transaction is open at most. An
    error of the write (or of the progress report after it, where cancellation is noticed)
    is raised by the next `flush`, so no batch is written after it.
    """

    def __init__(
        self,
        transaction: Transaction,
        cache: ReadCache,
        positions: dict[str, int],
        max_errors: int,
        progress: Progress,
    ) -> None:
        self.transaction = transaction
        self.cache = cache
        self.max_errors = max_errors
        self.progress = progress
        self.result = ImportResult()
        self.batch: dict[str, ProductRow] = {}
        self.writing: asyncio.Task[None] | None = None
        self.fields: Callable[[list[str]], Fields] = itemgetter(
            *(positions[column] for column in COLUMNS)
        )
        self.width = max(positions.values()) + 1
        self.sku_index = positions["sku"]

    def fail(self, row: int, column: str | None, message: str) -> None:
        self.result.failed += 1
        if len(self.result.errors) < self.max_errors:
            self.result.errors.append({"row": row, "column": column, "message": message})
        else:
            self.result.errors_truncated = True

    def add(self, record: Record) -> None:
        if record.error:
            self.fail(record.number, None, record.error)
            return
        if len(record.fields) < self.width:
            self.fail(record.number, None, "the row has fewer fields than the header")
            return
        row = product_row(self.fields(record.fields))
        if isinstance(row, RowError):
            self.fail(record.number, row.column, row.message)
            return
        self.batch[row.sku] = row

    def repeats(self, record: Record) -> bool:
        """Whether the record names a SKU the batch already holds."""
        fields = record.fields
        return len(fields) > self.sku_index and fields[self.sku_index] in self.batch

    async def flush(self, consumed: int | None = None) -> None:
        """Start writing the batch (then report `consumed` bytes as progress, if given), once
        the batch before it is written."""
        await self.written()
        rows, self.batch = list(self.batch.values()), {}
        self.writing = asyncio.create_task(self._write(rows, consumed))

    async def written(self) -> None:
        """Wait for the batch being written; raise what its write raised."""
        writing, self.writing = self.writing, None
        if writing is not None:
            await writing

    async def abandon(self) -> None:
        """Stop the batch being written (its transaction rolls back) and wait until it has."""
        writing, self.writing = self.writing, None
        if writing is not None and not writing.done():
            writing.cancel()
            await asyncio.wait([writing])

    async def _write(self, rows: list[ProductRow], consumed: int | None) -> None:
        if rows:
            async with self.transaction() as session:
                created, updated = await catalog.import_batch(session, self.cache, rows)
            self.result.created += created
            self.result.updated += updated
        if consumed is not None:
            await self.progress(consumed)


# While a batch is written, the loop is let run every so many records, so the writer's
# round trips are answered promptly (reading the file lets it run only once per chunk).
_YIELD_EVERY = 64


async def import_products(
    database: Database,
    cache: ReadCache,
    chunks: AsyncIterable[bytes],
    *,
    batch_size: int,
    max_errors: int,
    progress: Progress,
) -> ImportResult:
    """Import a file `check_file` accepted; `progress` gets the bytes read after each batch."""
    importer: _Importer | None = None
    try:
        async with _transactions(database) as transaction:
            try:
                async for record in csv_records(chunks):
                    if importer is None:
                        positions = _header(record.fields)
                        importer = _Importer(transaction, cache, positions, max_errors, progress)
                        continue
                    if importer.repeats(record):
                        await importer.flush()  # a repeated SKU: the later row wins, in order
                    importer.add(record)
                    if len(importer.batch) >= batch_size:
                        await importer.flush(record.consumed)
                    elif importer.writing is not None and record.number % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                if importer is None:
                    raise MalformedFileError("The file is empty; it needs a header row")
                await importer.flush()
                await importer.written()
            finally:
                if importer is not None:  # before the connection goes
                    await importer.abandon()
    except NotUtf8Error as exc:  # the file changed since it was checked
        raise MalformedFileError(str(exc)) from None
    return importer.result
