"""Object storage behind one small interface: a local directory, S3-compatible, or memory.

obstore does the work (one Rust client for every backend, async streaming reads and writes,
multipart uploads that are aborted when the source fails, presigned URLs). Keel adds the
rules it needs: a write is all or nothing, a missing object reads as `None`, and an
unreachable backend is a 503 rather than an unexplained 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError

if TYPE_CHECKING:
    from obstore import BytesStream
from obstore.store import LocalStore, MemoryStore, S3Store

from keel.core.config import CoreSettings
from keel.core.errors import NotFoundError, ServiceUnavailableError
from keel.core.logging import get_logger

log = get_logger(__name__)

StorageKind = Literal["local", "s3", "memory"]

# S3 parts are at least 5 MiB; two in flight keep a 1 GiB upload's memory in the tens of MiB.
PART_BYTES = 5 * 1024 * 1024
PARTS_IN_FLIGHT = 2
READ_CHUNK_BYTES = 64 * 1024


def _unavailable(exc: BaseException) -> ServiceUnavailableError:
    log.error("storage_failed", error=type(exc).__name__, detail=str(exc)[:500])
    return ServiceUnavailableError("File storage is unavailable")


class Storage:
    def __init__(self, store: LocalStore | S3Store | MemoryStore, kind: StorageKind) -> None:
        self._store = store
        self.kind = kind

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> Storage:
        url = urlsplit(settings.storage_url)
        if url.scheme == "memory":
            return cls(MemoryStore(), "memory")
        if url.scheme == "file":
            root = Path(url.netloc + url.path).resolve()
            return cls(LocalStore(root, mkdir=True), "local")
        secret = settings.storage_secret_access_key
        options: dict[str, str] = {"region": settings.storage_region}
        if settings.storage_endpoint:
            options["endpoint"] = settings.storage_endpoint
        if settings.storage_access_key_id and secret is not None:
            options["access_key_id"] = settings.storage_access_key_id
            options["secret_access_key"] = secret.get_secret_value()
        store = S3Store(
            url.netloc,
            prefix=url.path.strip("/") or None,
            client_options={
                "allow_http": bool(settings.storage_endpoint),
                "connect_timeout": timedelta(seconds=settings.storage_connect_timeout_seconds),
                "timeout": timedelta(seconds=settings.storage_timeout_seconds),
            },
            # obstore's default retries for up to 3 minutes; a request should fail in seconds.
            retry_config={
                "max_retries": 2,
                "retry_timeout": timedelta(seconds=settings.storage_timeout_seconds),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=2),
                    "base": 2,
                },
            },
            **options,  # type: ignore[arg-type]
        )
        return cls(store, "s3")

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store everything `chunks` yields under `key`, or nothing if it raises part-way.

        Whatever the source raises (a size limit, a refused type, a client that went away)
        propagates unchanged once whatever was written is gone: obstore aborts a multipart
        upload itself, and the key is deleted as well in case a cancelled put got further.
        """
        try:
            await obstore.put_async(
                self._store,
                key,
                chunks,
                chunk_size=PART_BYTES,
                max_concurrency=PARTS_IN_FLIGHT,
            )
        except BaseException as exc:
            await self.discard(key)
            if isinstance(exc, BaseError | OSError):
                raise _unavailable(exc) from exc
            raise

    async def discard(self, key: str) -> None:
        """Delete an object that must not outlive a failure: shielded from cancellation, and
        a failure to delete is logged rather than raised over the error being handled."""
        try:
            await asyncio.shield(self.delete(key))
        except Exception:
            log.exception("storage_cleanup_failed", key=key)

    async def size(self, key: str) -> int | None:
        """The object's size, or None if there is no such object."""
        try:
            meta = await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return None
        except (BaseError, OSError) as exc:
            raise _unavailable(exc) from exc
        return int(meta["size"])

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes `start` up to (not including) `end` of an object that exists."""
        options = {} if start == 0 and end is None else {"range": (start, end)}
        try:
            result = await obstore.get_async(self._store, key, options=options)  # type: ignore[arg-type]
        except FileNotFoundError:
            # A row without its object: removed behind Keel's back. Not retryable, not a 503.
            log.error("storage_object_missing", key=key)
            raise NotFoundError("The file's content is missing") from None
        except (BaseError, OSError) as exc:
            raise _unavailable(exc) from exc
        return self._chunks(result.stream(min_chunk_size=READ_CHUNK_BYTES))

    @staticmethod
    async def _chunks(stream: BytesStream) -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield bytes(chunk)
        except (BaseError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def read_head(self, key: str, length: int) -> bytes:
        """The first `length` bytes (fewer if the object is shorter)."""
        size = await self.size(key)
        if not size:
            return b""
        parts = [chunk async for chunk in await self.read(key, 0, min(length, size))]
        return b"".join(parts)

    async def delete(self, key: str) -> None:
        """Remove the object; a missing one is fine (deletes are retried and repeated)."""
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            return
        except (BaseError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def keys(self, prefix: str | None = None) -> list[str]:
        """Every key under `prefix`: for maintenance (finding orphans) and tests."""
        try:
            return [
                str(meta["path"])
                async for batch in obstore.list(self._store, prefix)
                for meta in batch
            ]
        except (BaseError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def presigned_put(self, key: str, expires_in: timedelta) -> str | None:
        """A URL the client PUTs the object to directly, or None if this backend cannot sign."""
        if not isinstance(self._store, S3Store):
            return None
        try:
            return await obstore.sign_async(self._store, "PUT", key, expires_in)
        except (BaseError, OSError) as exc:
            raise _unavailable(exc) from exc
