from __future__ import annotations

import uuid

from pydantic import ConfigDict

from keel.core.types import RequestModel


class ImportFromFile(RequestModel):
    model_config = ConfigDict(extra="forbid")

    file_id: uuid.UUID
