from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict


class ImportFromFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_id: uuid.UUID
