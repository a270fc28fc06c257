"""The product CSV import: file check, row validation, batched upserts, a result.

Two passes over the stream. The first only decodes: a file that is not UTF-8 or lacks a
header column fails before anything is written. The second validates each row with the
product schema and upserts by SKU in batches, each batch its own short transaction, so
progress is visible, SQLite's single writer is never held for minutes, and running the
import again (a retry, a worker that took over from a dead one) converges on the same
products. Rows that fail validation are skipped and reported (row, column, message).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from keel.core.cache import ReadCache
from keel.core.database import Database
from keel.features.catalog import service as catalog
from keel.features.catalog.schemas import ProductCreate
from keel.features.imports.csv_records import NotUtf8Error, Record, Utf8Stream, csv_records

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


def _column_of(loc: tuple[int | str, ...]) -> str:
    if loc[:2] == ("price", "amount"):
        return "price"
    if loc[:2] == ("price", "currency"):
        return "currency"
    return str(loc[0]) if loc else ""


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


class _Importer:
    def __init__(
        self, database: Database, cache: ReadCache, batch_size: int, max_errors: int
    ) -> None:
        self.database = database
        self.cache = cache
        self.batch_size = batch_size
        self.max_errors = max_errors
        self.result = ImportResult()
        self.batch: dict[str, ProductCreate] = {}

    def fail(self, row: int, column: str | None, message: str) -> None:
        self.result.failed += 1
        if len(self.result.errors) < self.max_errors:
            self.result.errors.append({"row": row, "column": column, "message": message})
        else:
            self.result.errors_truncated = True

    def add(self, record: Record, positions: dict[str, int]) -> None:
        if record.error:
            self.fail(record.number, None, record.error)
            return
        if len(record.fields) <= max(positions.values()):
            self.fail(record.number, None, "the row has fewer fields than the header")
            return
        value = {column: record.fields[index] for column, index in positions.items()}
        try:
            product = ProductCreate.model_validate(
                {
                    "sku": value["sku"],
                    "name": value["name"],
                    "description": value["description"],
                    "price": {"amount": value["price"], "currency": value["currency"]},
                    "stock": value["stock"] or 0,
                    "is_active": value["is_active"] or True,
                },
                strict=False,  # CSV fields are text: "true", "100"
            )
        except ValidationError as exc:
            for error in exc.errors():
                self.fail(record.number, _column_of(error["loc"]), error["msg"])
                break  # one error per row is enough to fix it
            return
        self.batch[product.sku] = product

    async def flush(self) -> None:
        async with self.database.transaction() as session:
            created, updated = await catalog.import_batch(
                session, self.cache, list(self.batch.values())
            )
        self.result.created += created
        self.result.updated += updated
        self.batch.clear()


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
    importer = _Importer(database, cache, batch_size, max_errors)
    positions: dict[str, int] | None = None
    try:
        async for record in csv_records(chunks):
            if positions is None:
                positions = _header(record.fields)
                continue
            sku_index = positions["sku"]
            if len(record.fields) > sku_index and record.fields[sku_index] in importer.batch:
                await importer.flush()  # a repeated SKU: the later row wins, in order
            importer.add(record, positions)
            if len(importer.batch) >= batch_size:
                await importer.flush()
                await progress(record.consumed)
    except NotUtf8Error as exc:  # the file changed since it was checked
        raise MalformedFileError(str(exc)) from None
    if positions is None:
        raise MalformedFileError("The file is empty; it needs a header row")
    await importer.flush()
    return importer.result
