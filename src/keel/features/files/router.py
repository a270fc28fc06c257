from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, status
from fastapi.responses import StreamingResponse

from keel.core.dependencies import DbSession, Store, settings_of
from keel.core.downloads import RangeHeader, streamed
from keel.core.middleware.body_limit import UploadRouter
from keel.core.types import Text
from keel.features.auth.dependencies import CurrentUser, VerifiedUser
from keel.features.files import service
from keel.features.files.multipart import client_may_leave, read_file_part, upload_route
from keel.features.files.schemas import FileResponse, UploadUrlRequest, UploadUrlResponse
from keel.features.files.settings import FilesSettings

FileSettings = Annotated[FilesSettings, Depends(settings_of(FilesSettings))]

router = UploadRouter(prefix="/files", tags=["files"])  # bodies are uploads


@upload_route(
    router,
    "",
    "Upload a file (multipart field `file`, streamed to storage)",
    status.HTTP_201_CREATED,
)
async def upload_file(
    request: Request, user: VerifiedUser, session: DbSession, storage: Store, settings: FileSettings
) -> FileResponse:
    part = await read_file_part(request)
    stored = await service.upload(
        session,
        storage,
        user,
        part,
        max_bytes=settings.max_upload_bytes,
        allowed_types=settings.upload_allowed_types,
    )
    return FileResponse.model_validate(stored)


@router.post(
    "/upload-url",
    status_code=status.HTTP_201_CREATED,
    summary="Get a URL to PUT a large file to directly, then call /complete",
)
async def create_upload_url(
    body: UploadUrlRequest,
    request: Request,
    user: VerifiedUser,
    session: DbSession,
    storage: Store,
    settings: FileSettings,
) -> UploadUrlResponse:
    def local_url(file_id: uuid.UUID) -> str:
        return str(request.url_for("receive_direct_upload", file_id=str(file_id)))

    return await service.create_upload_url(session, storage, settings, user, body, local_url)


@router.put(
    "/{file_id:uuid}/upload",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Receive a direct upload (the signed URL from /upload-url; no bearer token)",
)
async def receive_direct_upload(
    file_id: uuid.UUID,
    token: Annotated[Text, Query(max_length=2000)],
    request: Request,
    session: DbSession,
    storage: Store,
    settings: FileSettings,
) -> None:
    with client_may_leave():
        await service.receive_direct_upload(
            session, storage, settings, file_id, token, request.stream()
        )


@router.post("/{file_id:uuid}/complete", summary="Verify a direct upload and make the file visible")
async def complete_upload(
    file_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    storage: Store,
    settings: FileSettings,
) -> FileResponse:
    stored = await service.complete_upload(session, storage, settings, user, file_id)
    return FileResponse.model_validate(stored)


@router.get("/{file_id:uuid}", summary="Read a file's metadata (owner or admin)")
async def read_file(file_id: uuid.UUID, user: CurrentUser, session: DbSession) -> FileResponse:
    return FileResponse.model_validate(await service.get_for(session, user, file_id))


@router.get(
    "/{file_id:uuid}/content",
    summary="Download a file (streamed; a single `Range` gives 206)",
    **streamed("application/octet-stream"),
)
async def download_file(
    file_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    storage: Store,
    range_: RangeHeader = None,
) -> StreamingResponse:
    found = await service.download(session, storage, user, file_id, range_)
    return found.response()


@router.delete(
    "/{file_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a file (owner or admin)",
)
async def delete_file(
    file_id: uuid.UUID, user: CurrentUser, session: DbSession, storage: Store
) -> None:
    await service.delete(session, storage, user, file_id)
