"""Jinja2 templates through ``self._render_template``, driven in-process."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from micropie import App
from micropie.testing import TestClient
from tests.helpers.support import micropie_errors

TEMPLATES_HINT = "pip install jinja2"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "greet.html").write_text(
        "<h1>Hello, {{ who }}!</h1><ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>",
        encoding="utf-8",
    )
    (tmp_path / "named.html").write_text("name={{ name }}", encoding="utf-8")
    (tmp_path / "comment.txt").write_text("said: {{ text }}", encoding="utf-8")
    (tmp_path / "base.html").write_text(
        "<title>{% block title %}{% endblock %}</title>", encoding="utf-8"
    )
    (tmp_path / "child.html").write_text(
        '{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}', encoding="utf-8"
    )
    return tmp_path


def formatted(record: logging.LogRecord) -> str:
    """The record as a log handler writes it: the message, then any traceback."""
    return logging.Formatter("%(message)s").format(record)


class TemplateApp(App):
    async def greet(self, who: str) -> str:
        return await self._render_template("greet.html", who=who, items=["pie", "tart"])

    async def named(self, name: str) -> str:
        return await self._render_template("named.html", name=name)

    async def comment(self, text: str) -> str:
        return await self._render_template("comment.txt", text=text)

    async def child(self, title: str) -> str:
        return await self._render_template("child.html", title=title)

    async def missing(self) -> str:
        return await self._render_template("no-such-template.html")


def test_render_template_uses_templates_dir_and_context(
    make_client: Callable[[App], TestClient], templates: Path
) -> None:
    response = make_client(TemplateApp(templates_dir=templates)).get("/greet/Ada")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "<h1>Hello, Ada!</h1><ul><li>pie</li><li>tart</li></ul>"


def test_templates_dir_accepts_a_string(
    make_client: Callable[[App], TestClient], templates: Path
) -> None:
    response = make_client(TemplateApp(templates_dir=str(templates))).get("/greet/Bo")
    assert response.text.startswith("<h1>Hello, Bo!</h1>")


@pytest.mark.parametrize(
    ("path", "text"),
    [
        # "name" is the most common template variable of all; it must not clash
        # with _render_template's own first parameter, the template's name.
        pytest.param("/named/Ada", "name=Ada", id="a context variable called name"),
        pytest.param("/child/Home", "<title>Home</title>", id="inheritance in templates_dir"),
        pytest.param(
            "/comment?text=%3Cb%3E%26%22",
            "said: &lt;b&gt;&amp;&#34;",
            id="autoescaping whatever the template's extension",
        ),
    ],
)
def test_templates_render_as_written(
    make_client: Callable[[App], TestClient], templates: Path, path: str, text: str
) -> None:
    response = make_client(TemplateApp(templates_dir=templates)).get(path)
    assert response.status_code == 200
    assert response.text == text


def test_autoescaping_escapes_html_in_context(
    make_client: Callable[[App], TestClient], templates: Path
) -> None:
    response = make_client(TemplateApp(templates_dir=templates)).get(
        "/greet?who=%3Cscript%3Ealert(1)%3C/script%3E"
    )
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_missing_template_is_500_and_logged(
    make_client: Callable[[App], TestClient],
    templates: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = make_client(TemplateApp(templates_dir=templates)).get("/missing")
    assert response.status_code == 500
    assert "no-such-template" not in response.text
    assert "Traceback" not in response.text
    logged = micropie_errors(caplog)
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert "no-such-template.html" in formatted(logged[0])


def test_jinja2_missing_is_500_with_install_hint_logged(
    make_client: Callable[[App], TestClient],
    templates: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    app = TemplateApp(templates_dir=templates)  # fresh: no Jinja2 environment yet
    response = make_client(app).get("/greet/Ada")
    assert response.status_code == 500
    assert TEMPLATES_HINT not in response.text
    assert "Traceback" not in response.text
    logged = micropie_errors(caplog)
    assert len(logged) == 1
    assert TEMPLATES_HINT in formatted(logged[0])
