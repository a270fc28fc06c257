"""File rules: what may be stored, who may see it, and that storage and rows never disagree.

An object is written first and its row after; if anything fails in between (a limit, a
refused type, a client that disconnects, a failed commit) the object is deleted again, so a
failed upload leaves nothing behind. Deleting a file removes the row first and the object
after the commit.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from keel.core.database import after_commit, after_rollback, keep_changes
from keel.core.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from keel.core.logging import get_logger
from keel.core.models import utcnow
from keel.core.storage import Storage
from keel.features.files import repository
from keel.features.files.models import FileStatus, StoredFile
from keel.features.files.multipart import FilePart
from keel.features.files.naming import content_disposition, sanitize_filename
from keel.features.files.ranges import parse_range
from keel.features.files.schemas import UploadUrlRequest, UploadUrlResponse
from keel.features.files.settings import FilesSettings
from keel.features.files.signing import sign_upload, verify_upload
from keel.features.files.sniffing import SNIFF_BYTES, accepted_type
from keel.features.users.models import User

log = get_logger(__name__)


def storage_key(file_id: uuid.UUID) -> str:
    return f"files/{file_id}"


def _not_found() -> NotFoundError:
    return NotFoundError("File not found")


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The file exceeds {limit} bytes", details={"max_bytes": limit})


@dataclass(slots=True)
class _Checked:
    """Passes chunks through while enforcing the size limit, sniffing the type from the
    first bytes and hashing everything: one pass, nothing held but the first 4 KiB."""

    declared_type: str | None
    limit: int
    allowed: list[str]
    any_text: bool = field(kw_only=True)
    size: int = field(default=0, init=False)
    content_type: str | None = field(default=None, init=False)  # once sniffed
    digest: hashlib._Hash = field(default_factory=hashlib.sha256, init=False)

    async def chunks(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        head = b""
        async for chunk in source:
            self.size += len(chunk)
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.digest.update(chunk)
            if self.content_type is None:
                head += chunk
                if len(head) < SNIFF_BYTES:
                    continue
                self.content_type = self._accepted(head)
                chunk, head = head, b""
            yield chunk
        if self.content_type is None:
            self.content_type = self._accepted(head)
            yield head

    def _accepted(self, head: bytes) -> str:
        return accepted_type(self.declared_type, head, self.allowed, any_text=self.any_text)


async def upload(
    session: AsyncSession,
    storage: Storage,
    owner: User,
    part: FilePart,
    *,
    max_bytes: int,
    allowed_types: list[str],
    any_text: bool = False,
) -> StoredFile:
    """Store the part: at most `max_bytes`, of one of `allowed_types` (as sniffed). `any_text`:
    text in any encoding, NUL bytes included, passes the type check (for a caller that checks
    the text itself; see `sniffing.detect`)."""
    file_id = uuid.uuid4()
    key = storage_key(file_id)
    checked = _Checked(part.content_type, max_bytes, allowed_types, any_text=any_text)
    await storage.write(key, checked.chunks(part.chunks))
    after_rollback(session, lambda: storage.discard(key))
    assert checked.content_type is not None
    stored = StoredFile(
        id=file_id,
        owner_id=owner.id,
        filename=sanitize_filename(part.filename),
        content_type=checked.content_type,
        size=checked.size,
        sha256=checked.digest.hexdigest(),
        storage_key=key,
        status=FileStatus.ACTIVE,
    )
    await repository.add(session, stored)
    log.info("file_uploaded", file_id=str(file_id), size=checked.size, type=stored.content_type)
    return stored


async def get_for(session: AsyncSession, user: User, file_id: uuid.UUID) -> StoredFile:
    """An active file the user owns (any file for admins); 404 for everything else."""
    stored = await repository.get(session, file_id)
    if stored is None or stored.status != FileStatus.ACTIVE or not user.may_see(stored.owner_id):
        raise _not_found()
    return stored


@dataclass(frozen=True, slots=True)
class Download:
    file: StoredFile
    start: int
    end: int
    partial: bool
    chunks: AsyncIterator[bytes]

    def response(self, *, cache_control: str = "private, no-cache") -> StreamingResponse:
        """The streamed answer, the same for every route that serves a file's bytes."""
        headers = {
            "Content-Length": str(self.end - self.start),
            "Content-Disposition": content_disposition(self.file.filename),
            "Accept-Ranges": "bytes",
            "ETag": f'"{self.file.sha256}"',
            "Cache-Control": cache_control,
        }
        if self.partial:
            headers["Content-Range"] = f"bytes {self.start}-{self.end - 1}/{self.file.size}"
        return StreamingResponse(
            self.chunks,
            status_code=status.HTTP_206_PARTIAL_CONTENT if self.partial else status.HTTP_200_OK,
            media_type=self.file.content_type,
            headers=headers,
        )


async def _download(storage: Storage, stored: StoredFile, range_header: str | None) -> Download:
    requested = parse_range(range_header, stored.size)
    start, end = requested or (0, stored.size)
    chunks = await storage.read(stored.storage_key, start, end if requested else None)
    return Download(stored, start, end, requested is not None, chunks)


async def download(
    session: AsyncSession,
    storage: Storage,
    user: User,
    file_id: uuid.UUID,
    range_header: str | None,
) -> Download:
    return await _download(storage, await get_for(session, user, file_id), range_header)


async def download_published(
    session: AsyncSession, storage: Storage, file_id: uuid.UUID, range_header: str | None
) -> Download:
    """A file another feature publishes (a product's image): that feature decides who may
    read it, so there is no owner check here; only an active file is served."""
    stored = await repository.get(session, file_id)
    if stored is None or stored.status != FileStatus.ACTIVE:
        raise _not_found()
    return await _download(storage, stored, range_header)


async def delete(session: AsyncSession, storage: Storage, user: User, file_id: uuid.UUID) -> None:
    stored = await get_for(session, user, file_id)
    key = stored.storage_key
    await repository.delete(session, stored)
    after_commit(session, lambda: storage.delete(key))


async def read_image(session: AsyncSession, file_id: uuid.UUID) -> StoredFile:
    """An active image file, for other features to point at (422 otherwise)."""
    stored = await repository.get(session, file_id)
    if stored is None or stored.status != FileStatus.ACTIVE:
        raise ValidationFailedError.field(("body", "file_id"), "no such file", "missing")
    if not stored.content_type.startswith("image/"):
        raise ValidationFailedError.field(
            ("body", "file_id"),
            "not an image",
            "content_type",
            message="Only images can be used here",
        )
    return stored


async def read_active(
    session: AsyncSession, storage: Storage, file_id: uuid.UUID
) -> tuple[int, AsyncIterator[bytes]]:
    """(size, bytes) of an active file, for jobs that process an upload (a CSV import)."""
    stored = await repository.get(session, file_id)
    if stored is None or stored.status != FileStatus.ACTIVE:
        raise _not_found()
    return stored.size, await storage.read(stored.storage_key)


# Direct uploads ------------------------------------------------------------------------------


async def create_upload_url(
    session: AsyncSession,
    storage: Storage,
    settings: FilesSettings,
    owner: User,
    request: UploadUrlRequest,
    local_url: Callable[[uuid.UUID], str],
) -> UploadUrlResponse:
    """Reserve a pending file and a URL to PUT its bytes to: presigned by S3, or Keel's own
    signed URL (`local_url(file_id)` plus a token) on the other backends."""
    if request.size > settings.max_upload_bytes:
        raise _too_large(settings.max_upload_bytes)
    content_type = request.content_type.lower()
    if content_type not in settings.upload_allowed_types:
        raise UnsupportedMediaTypeError(
            f"Files of type {content_type} are not accepted",
            details={"allowed": settings.upload_allowed_types},
        )
    file_id = uuid.uuid4()
    key = storage_key(file_id)
    lifetime = timedelta(seconds=settings.upload_url_ttl_seconds)
    expires_at = utcnow() + lifetime
    url = await storage.presigned_put(key, lifetime)
    if url is None:
        assert settings.jwt_secret is not None
        token = sign_upload(settings.jwt_secret.get_secret_value(), file_id, expires_at)
        url = f"{local_url(file_id)}?token={token}"
    await repository.add(
        session,
        StoredFile(
            id=file_id,
            owner_id=owner.id,
            filename=sanitize_filename(request.filename),
            content_type=content_type,
            size=request.size,
            storage_key=key,
            status=FileStatus.PENDING,
            upload_expires_at=expires_at,
        ),
    )
    return UploadUrlResponse(
        id=file_id, upload_url=url, headers={"Content-Type": content_type}, expires_at=expires_at
    )


async def receive_direct_upload(
    session: AsyncSession,
    storage: Storage,
    settings: FilesSettings,
    file_id: uuid.UUID,
    token: str,
    body: AsyncIterable[bytes],
) -> None:
    """Store the body PUT to a signed local upload URL (at most the announced size)."""
    assert settings.jwt_secret is not None
    verify_upload(settings.jwt_secret.get_secret_value(), token, file_id)
    stored = await repository.get(session, file_id)
    if stored is None or stored.status != FileStatus.PENDING:
        raise _not_found()

    async def limited() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > stored.size:
                raise _too_large(stored.size)
            yield chunk

    await storage.write(stored.storage_key, limited())


async def complete_upload(
    session: AsyncSession, storage: Storage, settings: FilesSettings, user: User, file_id: uuid.UUID
) -> StoredFile:
    """Check the uploaded object against what was announced, hash it and make it visible.

    A wrong size or type deletes the object (the client starts again with a new URL).
    """
    stored = await repository.get(session, file_id)
    if stored is None or not user.may_see(stored.owner_id):
        raise _not_found()
    if stored.status == FileStatus.ACTIVE:
        return stored  # completing twice is harmless
    size = await storage.size(stored.storage_key)
    if size is None:
        raise ConflictError("Nothing has been uploaded to this file's URL yet")
    try:
        if size != stored.size:
            raise ValidationFailedError.field(
                ("body", "size"),
                "size mismatch",
                "size",
                message=f"The uploaded object has {size} bytes, not the {stored.size} announced",
            )
        head = await storage.read_head(stored.storage_key, SNIFF_BYTES)
        accepted_type(stored.content_type, head, settings.upload_allowed_types)
    except (ValidationFailedError, UnsupportedMediaTypeError) as error:
        await storage.discard(stored.storage_key)
        await repository.delete(session, stored)
        # The refusal is the answer, and the pending row must go with the object.
        keep_changes(session, error)
        raise
    digest = hashlib.sha256()
    async for chunk in await storage.read(stored.storage_key):
        digest.update(chunk)
    await repository.activate(session, stored, digest.hexdigest())
    return stored
