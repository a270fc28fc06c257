from __future__ import annotations

from typing import Any

from fastapi import Request, Response, status
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from keel.core.dependencies import AppSettings, DbSession, Jobs, Store
from keel.core.errors import BadRequestError, ValidationFailedError
from keel.core.middleware.body_limit import UploadRouter
from keel.features.auth.dependencies import AdminUser
from keel.features.files.multipart import FILE_FIELD_SCHEMA, read_file_part
from keel.features.imports import service
from keel.features.imports.schemas import ImportFromFile
from keel.features.jobs.schemas import JobResponse

router = UploadRouter(prefix="/imports", tags=["imports"])  # bodies are uploads

IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": FILE_FIELD_SCHEMA},
            "application/json": {"schema": ImportFromFile.model_json_schema()},
        },
    }
}


@router.post(
    "/products",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import products from a CSV (multipart `file`, or `{file_id}` of an upload)",
    openapi_extra=IMPORT_BODY,
)
async def import_products(
    request: Request,
    response: Response,
    admin: AdminUser,
    session: DbSession,
    storage: Store,
    jobs: Jobs,
    settings: AppSettings,
) -> JobResponse:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = ImportFromFile.model_validate_json(await request.body())
        except ValidationError as exc:
            raise ValidationFailedError.from_pydantic(exc.errors(), prefix=("body",)) from None
        job = await service.import_stored_csv(session, jobs, admin, body.file_id)
    else:
        try:
            part = await read_file_part(request)
            job = await service.import_uploaded_csv(
                session, storage, jobs, admin, part, max_bytes=settings.max_upload_bytes
            )
        except ClientDisconnect:
            raise BadRequestError("The client went away during the upload") from None
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobResponse.model_validate(job)
