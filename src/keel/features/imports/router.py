from __future__ import annotations

from fastapi import Request, Response, status
from pydantic import ValidationError

from keel.core.dependencies import AppSettings, DbSession, Jobs, Store
from keel.core.errors import ValidationFailedError
from keel.core.middleware.body_limit import UploadRouter
from keel.features.auth.dependencies import AdminUser
from keel.features.files.multipart import read_file_part, upload_route
from keel.features.imports import service
from keel.features.imports.schemas import ImportFromFile
from keel.features.jobs.schemas import JobResponse

router = UploadRouter(prefix="/imports", tags=["imports"])  # bodies are uploads


@upload_route(
    router,
    "/products",
    "Import products from a CSV (multipart `file`, or `{file_id}` of an upload)",
    status.HTTP_202_ACCEPTED,
    also={"application/json": ImportFromFile.model_json_schema()},
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
        part = await read_file_part(request)
        job = await service.import_uploaded_csv(
            session, storage, jobs, admin, part, max_bytes=settings.max_upload_bytes
        )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobResponse.model_validate(job)
