"""The namespace users subclass holds their surface only: a helper under any
underscore name, even one MicroPie uses inside, changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

import micropie
from micropie import App, HttpMiddleware, Request, WebSocket, WebSocketMiddleware
from micropie.testing import TestClient

# The names of the engine that App held before it moved out, and every
# private name App holds now (class and instance): a user's helper may take any.
ENGINE_NAMES_OF_OLD = [
    "_serve_http", "_serve_websocket", "_respond", "_read_body", "_call_handler", "_admit",
    "_finish_websocket", "_origin_allowed", "_save_websocket_session", "_routes", "_templates",
    "_settings", "_state", "_engine", "_RESERVED_NAMES",
]  # fmt: skip
USER_SURFACE = {"_redirect", "_render_template"}


def framework_private_names() -> list[str]:
    app = App()
    names = {
        name
        for name in [*vars(App), *vars(app)]
        if name.startswith("_") and not name.startswith("__") and name not in USER_SURFACE
    }
    return sorted(names | set(ENGINE_NAMES_OF_OLD))


def test_app_keeps_its_own_state_under_mangled_names_only() -> None:
    private = [n for n in framework_private_names() if n not in ENGINE_NAMES_OF_OLD]
    assert private, "App keeps no private state at all? The scan is broken."
    assert all(name.startswith("_App__") for name in private), private


def _helper(name: str) -> Callable[..., Any]:
    def helper(self: App, *args: Any, **kwargs: Any) -> str:
        return f"the user's own {name}"

    helper.__name__ = name
    return helper


def test_a_helper_under_every_internal_name_breaks_nothing(
    make_client: Callable[..., TestClient],
) -> None:
    seen: list[str] = []

    class Tag(HttpMiddleware):
        async def after_request(self, request: Request, *args: Any) -> None:
            args[-1].append(("x-tag", "tagged"))

    class Watch(WebSocketMiddleware):
        async def before_websocket(self, request: Any) -> None:
            seen.append(f"before {request.path}")

        async def after_websocket(self, request: Any) -> None:
            seen.append(f"after {request.path}")

    # What a user's class body can name: any plain underscore name, and
    # App's own double-underscore names, which Python mangles with the
    # user's class name (``__routes`` in Crowded is ``_Crowded__routes``).
    names = [name.replace("_App__", "_Crowded__") for name in framework_private_names()]
    helpers = {name: _helper(name) for name in names}

    async def count(self: App) -> str:
        visits = self.request.session.get("visits", 0) + 1
        self.request.session["visits"] = visits
        return f"visit {visits}"

    async def ws_echo(self: App, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(f"{await ws.receive_text()} ({self.request.session['visits']})")

    Crowded = type("Crowded", (App,), {**helpers, "count": count, "ws_echo": ws_echo})
    app = Crowded(middlewares=[Tag(), Watch()])
    client = make_client(app)
    assert client.get("/count").text == "visit 1"
    response = client.get("/count")
    assert (response.text, response.headers["x-tag"]) == ("visit 2", "tagged")
    with client.websocket_connect("/echo") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "hello (2)"
    assert seen == ["before /echo", "after /echo"]
    for name in helpers:  # still the user's, and not routes
        assert getattr(app, name)() == f"the user's own {name}"
        assert client.get(f"/{name}").status_code == 404


def test_an_init_that_skips_apps_own_says_what_to_do(
    make_client: Callable[..., TestClient],
) -> None:
    class Forgetful(App):
        def __init__(self) -> None:
            pass  # no super().__init__()

        def index(self) -> str:
            return "hi"

    client = make_client(Forgetful())
    with pytest.raises(AttributeError, match=r"its __init__ must call super\(\).__init__\(\)"):
        client.get("/")

    class Early(App):
        def __init__(self) -> None:
            self.startup_handlers = []  # before App's own __init__
            super().__init__()

    with pytest.raises(AttributeError, match="before it reads or sets app settings"):
        Early()
    assert not hasattr(Forgetful(), "middlewares")  # hasattr works, as on any object


def test_settings_live_where_the_machinery_reads_them() -> None:
    app = App()
    backend = micropie.sessions.InMemorySessionBackend()
    app.session_backend = backend
    app.allowed_origins = ["HTTPS://App.Example.com/"]  # type: ignore[assignment]
    app.middlewares = [HttpMiddleware()]  # type: ignore[assignment]
    assert app.session_backend is backend
    assert app.allowed_origins == frozenset({"https://app.example.com"})
    assert isinstance(app.middlewares, micropie.middleware.MiddlewareList)
    assert len(app.middlewares.http) == 1 and app.middlewares.websocket == ()


def test_a_class_attribute_named_like_a_setting_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"Small.max_body_size: 'max_body_size' is a setting"):

        class Small(App):
            max_body_size = 5


def test_a_patched_setting_comes_back_and_a_copy_has_its_own() -> None:
    app = App()
    with mock.patch.object(app, "max_body_size", 10):
        assert app.max_body_size == 10
    assert app.max_body_size == micropie.bodies.DEFAULT_MAX_BODY_SIZE
    twin = copy.copy(app)
    twin.max_body_size = 1
    assert app.max_body_size == micropie.bodies.DEFAULT_MAX_BODY_SIZE


def test_middlewares_keep_a_middleware_list_as_it_is_and_lose_nothing_to_bad_input() -> None:
    app = App()
    first, second = HttpMiddleware(), HttpMiddleware()
    chosen = micropie.middleware.MiddlewareList([first])
    app.middlewares = chosen
    chosen.append(second)
    assert app.middlewares is chosen and app.middlewares.http == (first, second)
    with pytest.raises(TypeError, match="not int"):
        app.middlewares[0] = 5  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="not str"):
        app.middlewares.extend(iter([first, "x"]))  # type: ignore[list-item]
    assert list(app.middlewares) == [first, second]
    app.middlewares.sort(key=lambda m: m is first)
    assert app.middlewares.http == (second, first)
    del app.middlewares[0]
    assert app.middlewares.http == (first,)
