"""The account emails as rendered: both parts, escaping, settings, and `keel email preview`."""

from __future__ import annotations

from email import message_from_string, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import cli
from keel.core.errors import ConfigError
from keel.features.auth import emails
from keel.settings import Settings
from tests.conftest import MakeSettings

runner = CliRunner()


@pytest.mark.parametrize("message", list(emails.Message))
def test_every_message_has_both_parts_with_the_product_name(
    make_settings: MakeSettings, message: emails.Message
) -> None:
    settings = make_settings(app_name="Harbour Shop", public_url="https://harbour.example/")
    email = emails.preview(settings, message)
    assert "Harbour Shop" in email.subject
    assert "Harbour Shop" in email.body
    assert email.html is not None
    assert "Harbour Shop" in email.html
    assert "<html" in email.html
    assert "<" not in email.body  # the text part is text, not markup
    for part in (email.body, email.html):
        assert "https://harbour.example/" in part or message is emails.Message.EMAIL_CHANGED
        assert "https://harbour.example//" not in part  # the trailing slash is not doubled


def test_html_is_escaped_and_text_is_not(make_settings: MakeSettings) -> None:
    settings = make_settings()
    email = emails.password_reset_email(settings, "a@example.com", '<b onclick="x">Eve</b>', "t")
    assert email.html is not None
    assert "<b onclick" not in email.html
    assert "&lt;b onclick=&#34;x&#34;&gt;Eve&lt;/b&gt;" in email.html
    assert '<b onclick="x">Eve</b>' in email.body


def test_links_carry_the_token_as_a_query(make_settings: MakeSettings) -> None:
    settings = make_settings(public_url="https://shop.example/base")
    assert emails.link(settings, "/reset-password", "a+b/c=") == (
        "https://shop.example/base/reset-password?token=a%2Bb%2Fc%3D"
    )


@pytest.mark.parametrize("url", ["shop.example", "ftp://shop.example", "https://", "http://a b"])
def test_public_url_must_be_an_http_url(make_settings: MakeSettings, url: str) -> None:
    with pytest.raises(ConfigError, match="KEEL_PUBLIC_URL"):
        make_settings(public_url=url)


def test_verified_email_is_required_by_default_in_production_only() -> None:
    assert Settings(environment="production", _env_file=None).verified_email_required is True
    assert Settings(environment="development", _env_file=None).verified_email_required is False
    assert Settings(environment="test", _env_file=None).verified_email_required is False
    forced = Settings(environment="development", require_verified_email=True, _env_file=None)
    assert forced.verified_email_required is True
    relaxed = Settings(environment="production", require_verified_email=False, _env_file=None)
    assert relaxed.verified_email_required is False


@pytest.mark.parametrize(
    ("suffix", "expected"), [(".html", "<!doctype html>"), (".txt", "Hello Ada Lovelace")]
)
def test_preview_writes_one_part_to_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, expected: str
) -> None:
    monkeypatch.setenv("KEEL_APP_NAME", "Preview Shop")
    monkeypatch.setenv("KEEL_PUBLIC_URL", "https://preview.example")
    output = tmp_path / f"reset{suffix}"
    result = runner.invoke(cli, ["email", "preview", "password_reset", "--output", str(output)])
    assert result.exit_code == 0, result.output
    written = output.read_text(encoding="utf-8")
    assert written.startswith(expected)
    assert "https://preview.example/reset-password?token=PREVIEW-TOKEN" in written
    assert "Preview Shop" in written


def test_preview_prints_the_whole_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SMTP_FROM", "Shop <shop@example.com>")
    result = runner.invoke(cli, ["email", "preview", "email_changed"])
    assert result.exit_code == 0, result.output
    message = message_from_string(result.output, policy=policy.default)
    assert message["From"] == "Shop <shop@example.com>"
    assert message["Subject"] == "Your Keel email address was changed"
    assert [part.get_content_type() for part in message.iter_parts()] == [  # type: ignore[attr-defined]
        "text/plain",
        "text/html",
    ]


def test_preview_of_an_unknown_email_names_the_known_ones() -> None:
    result = runner.invoke(cli, ["email", "preview", "newsletter"])
    assert result.exit_code == 2
    assert "password_reset" in result.output
