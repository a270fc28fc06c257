"""KA401-KA405: CORS, secrets in source and settings, JWT verification, python-jose."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keel_audit.rules.base import Rule
from keel_audit.rules.security import (
    CorsWildcardCredentials,
    HardCodedSecret,
    JwtUnverified,
    PythonJose,
    SecretSettingDefault,
)
from keel_audit.source import Project

Make = Callable[[dict[str, str]], Project]


def run(make_project: Make, rule: type[Rule], files: dict[str, str]) -> list[str]:
    return [f"{f.location} {f.message}" for f in rule().check(make_project(files))]


CORS_HEAD = """\
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from app.config import settings

app = FastAPI()
"""
SETTINGS_STAR = """\
from pydantic_settings import BaseSettings

class Settings(BaseSettings):
    allowed_hosts: list[str] = ["*"]
    cors_credentials: bool = True

settings = Settings()
"""
SETTINGS_LISTED = """\
from pydantic_settings import BaseSettings

class Settings(BaseSettings):
    allowed_hosts: list[str] = []

settings = Settings()
"""

CORS_POSITIVES = {
    "literal star": {
        "app/main.py": CORS_HEAD
        + 'app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True)\n'
    },
    "settings default resolves to star (realworld's allowed_hosts)": {
        "app/main.py": CORS_HEAD
        + "app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_hosts,"
        " allow_credentials=True)\n",
        "app/config.py": SETTINGS_STAR,
    },
    "regex matching everything, credentials from settings": {
        "app/main.py": CORS_HEAD + 'app.add_middleware(CORSMiddleware, allow_origin_regex=".*",'
        " allow_credentials=settings.cors_credentials)\n",
        "app/config.py": SETTINGS_STAR,
    },
    "Middleware(...) list with a module constant": {
        "app/main.py": """\
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

ORIGINS = ["*"]
middleware = [Middleware(CORSMiddleware, allow_origins=ORIGINS, allow_credentials=True)]
"""
    },
}
CORS_NEGATIVES = {
    "star without credentials (Polar's public API config)": {
        "app/main.py": CORS_HEAD
        + 'app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=False)\n'
    },
    "listed origins with credentials": {
        "app/main.py": CORS_HEAD
        + 'app.add_middleware(CORSMiddleware, allow_origins=["https://shop.example"],'
        " allow_credentials=True)\n"
    },
    "settings default is an empty list (minimal template)": {
        "app/main.py": CORS_HEAD
        + "app.add_middleware(CORSMiddleware, allow_origins=[str(o) for o in"
        " settings.allowed_hosts], allow_credentials=True)\n",
        "app/config.py": SETTINGS_LISTED,
    },
    "a production settings class overrides the star default": {
        "app/main.py": CORS_HEAD
        + "app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_hosts,"
        " allow_credentials=True)\n",
        "app/config.py": SETTINGS_STAR
        + "\nclass ProdSettings(Settings):\n    allowed_hosts: list[str] = ['https://a.example']\n",
    },
    "allow_methods star is not allow_origins": {
        "app/main.py": CORS_HEAD
        + "app.add_middleware(CORSMiddleware, allow_origins=[settings.FRONTEND_HOST],"
        ' allow_credentials=True, allow_methods=["*"], allow_headers=["*"])\n'
    },
}


@pytest.mark.parametrize("case", sorted(CORS_POSITIVES))
def test_cors_star_with_credentials_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, CorsWildcardCredentials, CORS_POSITIVES[case])
    assert len(found) == 1, found
    assert "allows every origin" in found[0]


def test_cors_settings_finding_names_the_default(make_project: Make) -> None:
    files = CORS_POSITIVES["settings default resolves to star (realworld's allowed_hosts)"]
    (finding,) = CorsWildcardCredentials().check(make_project(files))
    assert "settings.allowed_hosts defaults to ['*'] (app/config.py:4)" in finding.message
    assert [str(step.location) for step in finding.chain] == [
        "app/main.py:6:1",
        "app/config.py:4:5",
    ]


@pytest.mark.parametrize("case", sorted(CORS_NEGATIVES))
def test_cors_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, CorsWildcardCredentials, CORS_NEGATIVES[case]) == []


SECRET_POSITIVES = {
    "module constant": 'SECRET_KEY = "k3y-9f8a7d6c5b4a"\n',
    "fastapi-users style SECRET in the app": 'SECRET = "a-long-jwt-secret"\n',
    "keyword argument": 'import redis\nclient = redis.Redis(host="cache", password="hunter22!")\n',
    "SessionMiddleware secret_key (codecarbon)": (
        "from starlette.middleware.sessions import SessionMiddleware\n\n"
        "def build(app):\n"
        '    app.add_middleware(SessionMiddleware, secret_key="some-random-string")\n'
    ),
    "literal key to jwt.encode": (
        'import jwt\n\ndef token(sub):\n    return jwt.encode({"sub": sub}, "my-signing-key")\n'
    ),
}
SECRET_NEGATIVES = {
    "read from the environment": 'import os\nSECRET_KEY = os.environ["SECRET_KEY"]\n',
    "prefixes and messages (Polar, minimal template)": (
        'TOKEN_PREFIX = "polar_oat_"\nPASSWORD_INVALID = "Incorrect email or password"\n'
        'WEBHOOK_SECRET_ENV_KEY = "POLAR_POLAR_WEBHOOK_SECRET"\n'
    ),
    "enum members naming token kinds": (
        "from enum import StrEnum\n\nclass TokenType(StrEnum):\n"
        '    client_secret = "polar_client_secret"\n    access_token = "polar_access_token"\n'
    ),
    "scope strings": 'access_token = "organization_access_tokens:read"\n',
    "an env var name and an empty default": 'GITHUB_TOKEN = "GITHUB_TOKEN"\nAPI_KEY = ""\n',
    "a masked value for display (mealie's PostgresDsn.build)": (
        'from pydantic import PostgresDsn\n\nSHOWN = PostgresDsn.build(scheme="postgresql", '
        'username="******", password="******", host="db")\n'
    ),
    "settings fields are KA405's": (
        "from pydantic_settings import BaseSettings\n\nclass Settings(BaseSettings):\n"
        '    SECRET_KEY: str = "changethis-but-long"\n'
    ),
}


@pytest.mark.parametrize("case", sorted(SECRET_POSITIVES))
def test_hard_coded_secret_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, HardCodedSecret, {"app/core.py": SECRET_POSITIVES[case]})
    assert len(found) == 1, found
    assert "literal" in found[0]


@pytest.mark.parametrize("case", sorted(SECRET_NEGATIVES))
def test_secret_look_alikes_are_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, HardCodedSecret, {"app/core.py": SECRET_NEGATIVES[case]}) == []


@pytest.mark.parametrize("path", ["tests/conftest.py", "examples/app/users.py", "scripts/seed.py"])
def test_secrets_in_tests_examples_and_scripts_are_not_reported(
    make_project: Make, path: str
) -> None:
    assert run(make_project, HardCodedSecret, {path: SECRET_POSITIVES["module constant"]}) == []


SETTING_POSITIVES = {
    "Polar's SECRET": 'SECRET: str = "super secret jwt secret"',
    "Field(default=...)": 'JWT_SECRET: str = Field(default="dev-secret-value")',
    "signing key": 'SESSION_SECRET: str = "0123456789abcdef"',
}
SETTING_NEGATIVES = {
    "no default (startup fails without it)": "SECRET_KEY: SecretStr",
    "empty default": 'SECRET_KEY: str = ""',
    "third-party API key placeholder": 'PYDANTIC_AI_GATEWAY_API_KEY: str = "DummyKey"',
    "validator rejects the default": (
        'SECRET_KEY: str = "changethis-please"\n\n'
        "    @model_validator(mode='after')\n    def _check(self):\n"
        "        if self.SECRET_KEY == 'changethis-please' and self.ENV != 'dev':\n"
        "            raise ValueError('set SECRET_KEY')\n        return self"
    ),
}
SETTINGS_TEMPLATE = (
    "from pydantic import Field, SecretStr, model_validator\n"
    "from pydantic_settings import BaseSettings\n\nclass Settings(BaseSettings):\n    {body}\n"
)


@pytest.mark.parametrize("case", sorted(SETTING_POSITIVES))
def test_secret_setting_default_is_reported(make_project: Make, case: str) -> None:
    files = {"app/config.py": SETTINGS_TEMPLATE.format(body=SETTING_POSITIVES[case])}
    found = run(make_project, SecretSettingDefault, files)
    assert len(found) == 1, found
    assert "no validator rejects it" in found[0]


@pytest.mark.parametrize("case", sorted(SETTING_NEGATIVES))
def test_guarded_secret_settings_are_not_reported(make_project: Make, case: str) -> None:
    files = {"app/config.py": SETTINGS_TEMPLATE.format(body=SETTING_NEGATIVES[case])}
    assert run(make_project, SecretSettingDefault, files) == []


JWT_POSITIVES = {
    "python-jose without algorithms (Dispatch)": (
        "from jose import jwt\n\ndef user(token, key):\n    return jwt.decode(token, key)\n"
    ),
    "signature verification off": (
        "import jwt\n\ndef claims(token):\n"
        '    return jwt.decode(token, options={"verify_signature": False})\n'
    ),
    "algorithm taken from the token header": (
        "import jwt\n\ndef claims(token, key):\n    header = jwt.get_unverified_header(token)\n"
        '    return jwt.decode(token, key, algorithms=[header["alg"]])\n'
    ),
    "PyJWT without algorithms": (
        "import jwt as pyjwt\n\ndef claims(token, key):\n    return pyjwt.decode(token, key)\n"
    ),
}
JWT_NEGATIVES = {
    "pinned algorithms (full-stack template)": (
        "import jwt\n\ndef claims(token, key):\n"
        '    return jwt.decode(token, key, algorithms=["HS256"])\n'
    ),
    "the project's own jwt wrapper (Polar's kit.jwt)": (
        "from app.kit import jwt\n\ndef state(token, key):\n"
        '    return jwt.decode(token=token, secret=key, type="oauth")\n'
    ),
    "peek at the claims, then verify in the same function": (
        "import jwt\n\ndef claims(token, keys):\n"
        '    issuer = jwt.decode(token, options={"verify_signature": False})["iss"]\n'
        '    return jwt.decode(token, keys[issuer], algorithms=["RS256"])\n'
    ),
    "algorithms from settings": (
        "import jwt\nfrom app.config import settings\n\ndef claims(token):\n"
        "    return jwt.decode(token, settings.KEY, algorithms=settings.JWT_ALGORITHMS)\n"
    ),
}


@pytest.mark.parametrize("case", sorted(JWT_POSITIVES))
def test_unverified_jwt_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, JwtUnverified, {"app/auth.py": JWT_POSITIVES[case]})
    assert len(found) == 1, found


@pytest.mark.parametrize("case", sorted(JWT_NEGATIVES))
def test_verified_jwt_is_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, JwtUnverified, {"app/auth.py": JWT_NEGATIVES[case]}) == []


JOSE_POSITIVES = {
    "from jose import jwt": "from jose import jwt\n",
    "from jose.exceptions": "from jose.exceptions import JWKError\n",
    "import jose.jwt": "import jose.jwt\n",
}
JOSE_NEGATIVES = {
    "PyJWT": "import jwt\n",
    "joserfc": "from joserfc import jwt\n",
    "a word in a string": 'NAME = "jose"\n',
}


@pytest.mark.parametrize("case", sorted(JOSE_POSITIVES))
def test_python_jose_is_reported(make_project: Make, case: str) -> None:
    found = run(make_project, PythonJose, {"app/auth.py": JOSE_POSITIVES[case]})
    assert len(found) == 1, found
    assert "python-jose" in found[0]


@pytest.mark.parametrize("case", sorted(JOSE_NEGATIVES))
def test_other_jwt_libraries_are_not_reported(make_project: Make, case: str) -> None:
    assert run(make_project, PythonJose, {"app/auth.py": JOSE_NEGATIVES[case]}) == []
