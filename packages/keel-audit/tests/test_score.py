"""The health check (out of 16) and the quality score (0-100): levels, bands and evidence."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from keel_audit.model import Finding, Location, Severity
from keel_audit.score import WEIGHTS, Step, _ladder, band, score
from keel_audit.source import Project

Make = Callable[[dict[str, str]], Project]

GOOD = {
    "pyproject.toml": """\
[project]
name = "shop"

[tool.mypy]
strict = true

[tool.pytest.ini_options]
asyncio_mode = "auto"

[tool.coverage.report]
fail_under = 90
""",
    "app/main.py": """\
from fastapi import Depends, FastAPI
from fastapi.security import OAuth2PasswordBearer

from app.errors import AppError
from app.schemas import ItemOut

app = FastAPI(title="Shop", description="Sells things", version="1")
oauth = OAuth2PasswordBearer(tokenUrl="/token")


async def on_app_error(request, exc):
    return None

app.add_exception_handler(AppError, on_app_error)


def require_role(role):
    return role


@app.get("/items/{item_id}", response_model=ItemOut)
async def get_item(item_id: int, token: str = Depends(oauth)):
    \"\"\"One item.\"\"\"
    return await load(item_id)


@app.get("/health")
async def health() -> ItemOut:
    \"\"\"Alive.\"\"\"
    return ItemOut()
""",
    "app/errors.py": """\
class AppError(Exception):
    pass

class NotFound(AppError):
    pass

class Conflict(AppError):
    pass
""",
    "app/schemas.py": (
        "from pydantic import BaseModel\n\nclass ItemOut(BaseModel):\n    id: int = 0\n"
    ),
    "app/db.py": """\
from contextlib import asynccontextmanager

import structlog
from cashews import cache
from limits import RateLimitItem
from opentelemetry import trace
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import create_async_engine


def make_engine(url):
    return create_async_engine(url, pool_size=10, max_overflow=5, pool_pre_ping=True)
""",
    "app/repository.py": "class ItemRepository:\n    pass\n",
    "alembic.ini": "[alembic]\n",
    "migrations/env.py": "from alembic import context\n",
    "migrations/versions/0001_items.py": """\
from alembic import op

def upgrade():
    op.create_table("item")

def downgrade():
    op.drop_table("item")
""",
    "tests/test_api.py": """\
import schemathesis

async def test_missing_item(client):
    response = await client.get("/items/999")
    assert response.status_code == 404
""",
    "Dockerfile": (
        "FROM python:3.12 AS build\nRUN true\nFROM python:3.12-slim\n"
        'HEALTHCHECK CMD curl -f http://localhost/health\nCMD ["app"]\n'
    ),
    ".github/workflows/ci.yml": "jobs:\n  audit:\n    steps:\n      - run: pip-audit\n",
}

BARE = {
    "app/main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n\n"
    "@app.get('/items')\ndef items():\n    print('listing')\n    return {'a': [1]}\n"
}


def test_weights_cover_eight_dimensions_and_sum_to_100() -> None:
    assert len(WEIGHTS) == 8
    assert sum(weight for _, weight in WEIGHTS) == 100


@pytest.mark.parametrize(
    ("value", "label"),
    [(0, "critical"), (39, "critical"), (40, "needs work"), (59, "needs work"),
     (60, "solid"), (79, "solid"), (80, "production-grade"), (100, "production-grade")],
)  # fmt: skip
def test_bands_follow_the_issue(value: int, label: str) -> None:
    assert band(value) == label


def test_a_step_met_after_a_missing_one_is_listed_but_not_counted() -> None:
    dimension = _ladder(
        "testing",
        15,
        [
            Step("tests exist", True, "3 test files"),
            Step("sad paths", False, "none"),
            Step("coverage", True, "fail_under = 90"),
            Step("contract", False, "none"),
        ],
    )
    assert dimension.level == 25
    assert [s.render() for s in dimension.steps] == [
        "+ tests exist: 3 test files",
        "- sad paths: none",
        "~ coverage: fail_under = 90",
        "- contract: none",
    ]
    assert dimension.points == 3.75


def test_a_well_built_project_gets_full_marks_with_evidence(make_project: Make) -> None:
    report = score(make_project(GOOD), [])
    assert report.health == 16, report.render_text()
    assert report.score == 100, report.render_text()
    assert report.band == "production-grade"
    text = "\n".join(report.render_text())
    assert "+ coverage at 80%+ enforced: [tool.coverage.report] fail_under = 90" in text
    assert "+ pool tuning: pool_size in app/db.py:12" in text
    assert (
        "+ a rollback path: migrations with downgrade() (migrations/versions/0001_items.py)" in text
    )
    assert "+ dependency scanning: pip-audit in .github/workflows/ci.yml" in text


def test_a_bare_project_names_every_missing_piece(make_project: Make) -> None:
    report = score(make_project(BARE), [])
    assert report.band == "critical"
    assert report.score < 40
    levels = {d.name: d.level for d in report.dimensions}
    assert levels["testing"] == 0
    assert levels["deployment"] == 0
    assert levels["database"] == 0
    text = "\n".join(report.render_text())
    assert "- tests exist: no test files" in text
    assert "- a Dockerfile: no Dockerfile" in text
    assert "- routes use Pydantic models: 0/1 routes declare a response model" in text
    assert "print() at app/main.py:7" in text


def test_a_project_without_fastapi_scores_without_crashing(make_project: Make) -> None:
    report = score(make_project({"lib/util.py": "def f():\n    return 1\n"}), [])
    assert report.score == 0
    assert report.health == 0
    assert "Health check: 0/16" in report.render_text()[0]


def test_security_errors_withhold_the_last_security_step(make_project: Make) -> None:
    secret = Finding("KA402", Severity.ERROR, Location("app/config.py", 3), "SECRET_KEY literal")
    report = score(make_project(GOOD), [secret])
    security = next(d for d in report.dimensions if d.name == "security")
    assert security.level == 75
    assert security.steps[-1].render() == (
        "- no security errors: 1 error findings: KA402 app/config.py:3:1"
    )
    assert report.score == 96  # 15 x 75% instead of 15


def test_blocking_findings_withhold_performance(make_project: Make) -> None:
    blocking = Finding("KA201", Severity.ERROR, Location("app/main.py", 20), "requests.get")
    report = score(make_project(GOOD), [blocking])
    performance = next(d for d in report.dimensions if d.name == "performance")
    assert performance.level == 25
    assert "KA201 app/main.py:20:1" in performance.steps[1].evidence


def test_hand_parsed_tokens_cost_an_auth_point(make_project: Make) -> None:
    files = {
        **GOOD,
        "app/auth.py": "def user(request):\n"
        "    return request.headers['Authorization'].split(' ')[1]\n",
    }
    report = score(make_project(files), [])
    auth = next(s for s in report.signals if s.name == "auth")
    assert auth.points == 1
    assert "Authorization split by hand at app/auth.py:2" in auth.evidence[1].evidence


def test_json_is_versioned_and_deterministic(make_project: Make) -> None:
    project = make_project(GOOD)
    first = json.dumps(score(project, []).to_json(), sort_keys=True)
    second = json.dumps(score(project, []).to_json(), sort_keys=True)
    assert first == second
    data = json.loads(first)
    assert data["version"] == 1
    assert data["health_max"] == 16
    assert [d["name"] for d in data["dimensions"]] == [name for name, _ in WEIGHTS]
    assert all(step["evidence"] for d in data["dimensions"] for step in d["steps"])


def test_pool_settings_in_an_options_dict_count(make_project: Make) -> None:
    db = (
        "from sqlalchemy.ext.asyncio import create_async_engine\n\n"
        "def make_engine(settings):\n    options = {}\n"
        "    options['pool_size'] = settings.pool_size\n"
        "    return create_async_engine(settings.url, **options)\n"
    )
    report = score(make_project({**GOOD, "app/db.py": db}), [])
    database = next(d for d in report.dimensions if d.name == "database")
    assert database.steps[-1].render() == "+ pool tuning: pool_size in app/db.py:5"


def test_no_pool_settings_withhold_the_last_database_step(make_project: Make) -> None:
    db = "from sqlalchemy import create_engine\n\nengine = create_engine('postgresql://h/db')\n"
    report = score(make_project({**GOOD, "app/db.py": db}), [])
    database = next(d for d in report.dimensions if d.name == "database")
    assert database.level == 75
    assert database.steps[-1].render() == "- pool tuning: no pool settings found"


def test_findings_in_operator_scripts_do_not_withhold_points(make_project: Make) -> None:
    script = Finding("KA201", Severity.ERROR, Location("scripts/backfill.py", 9), "time.sleep")
    report = score(make_project(GOOD), [script])
    assert report.score == 100
