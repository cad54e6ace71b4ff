"""Apps written for MicroPie 0.x under a real uvicorn, with real clients (issue 12).

The app file is written the way 0.x's documentation writes apps (no
annotations, 0.x's middleware dicts, ``ws_middlewares``, a router
middleware, a 0.x session backend); ``tests/unit/test_compat.py`` has each
point in detail. ``App.mount`` is shown here serving Starlette and
python-socketio's ASGI application under the same server.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed as ClientClosed

from tests.helpers.clients import ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import RunningServer, run_uvicorn

TIMEOUT = 5.0

UPSTREAM_STYLE_APP = """\
from micropie import App, HttpMiddleware, SessionBackend, WebSocketMiddleware


class DictSessions(SessionBackend):
    def __init__(self):
        self.data = {}

    async def load(self, session_id):
        return self.data.get(session_id, {})

    async def save(self, session_id, data, timeout):
        self.data[session_id] = data


class Gate(HttpMiddleware):
    async def before_request(self, request):
        if request.query_params.get("blocked"):
            return {"status_code": 403, "body": "Forbidden", "headers": [("X-Gate", "1")]}
        parts = request.scope["path"].strip("/").split("/")
        if parts[0] == "users" and len(parts) == 2:
            request._route_handler = "profile"
            request.path_params = [parts[1]]

    async def after_request(self, request, status_code, response_body, extra_headers):
        if isinstance(response_body, str) and response_body.startswith("Hello"):
            return {"body": response_body + "!"}


class WsGate(WebSocketMiddleware):
    async def before_websocket(self, request):
        if not request.query_params.get("user"):
            return {"code": 4001, "reason": "who are you?"}

    async def after_websocket(self, request):
        pass


class Old(App):
    def index(self, *parts):
        return "index " + "/".join(parts)

    def greet(self, name="World"):
        return f"Hello, {name}"

    def profile(self, user):
        return f"profile of {user}"

    def count(self):
        self.request.session["n"] = self.request.session.get("n", 0) + 1
        return self.request.session["n"]

    def echo_json(self):
        return {"got": self.request.get_json}

    def away(self):
        return self._redirect("/greet/Zoë", [("X-Moved", "yes")])

    async def ws_echo(self, ws):
        await ws.accept()
        while True:
            await ws.send_text("echo: " + await ws.receive_text())


app = Old(session_backend=DictSessions())
app.middlewares.append(Gate())
app.ws_middlewares.append(WsGate())
"""

MOUNTING_APP = """\
import socketio
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from micropie import App


async def hello(request):
    return PlainTextResponse(f"starlette at {request.url.path}, root {request.scope['root_path']}")


async def shout(websocket):
    await websocket.accept()
    await websocket.send_text((await websocket.receive_text()).upper())
    await websocket.close()


class Site(App):
    def index(self):
        return "micropie"


sio = socketio.AsyncServer(async_mode="asgi")
app = Site()
app.mount("/star", Starlette(routes=[Route("/hello", hello), WebSocketRoute("/shout", shout)]))
app.mount("/socket.io", socketio.ASGIApp(sio))
"""


def serve(tmp_path_factory: pytest.TempPathFactory, source: str) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("compat")
    (directory / "app.py").write_text(source)
    with quiet(run_uvicorn("app:app", cwd=directory)) as running:
        yield running


@pytest.fixture(scope="module")
def old_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from serve(tmp_path_factory, UPSTREAM_STYLE_APP)


@pytest.fixture(scope="module")
def mounting_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    pytest.importorskip("socketio")
    yield from serve(tmp_path_factory, MOUNTING_APP)


def http(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False)


def test_a_0x_app_runs_unchanged(old_app: RunningServer) -> None:
    with http(old_app) as client:
        assert client.get("/greet/Ada").text == "Hello, Ada!"  # after_request's 0x dict
        blocked = client.get("/greet?blocked=1")
        assert (blocked.status_code, blocked.text) == (403, "Forbidden")
        assert blocked.headers["x-gate"] == "1"
        assert client.get("/users/ada").text == "profile of ada"  # routed by the middleware
        assert client.get("/about/team").text == "index about/team"  # the index fallback
        assert client.get("/greet/Ada/and/more").text == "Hello, Ada!"  # extra segments left out
        assert client.get("/count").text == "1"
        assert client.get("/count").text == "2"  # the 0x backend keeps the session
        assert client.post("/echo_json", json={"k": [1]}).json() == {"got": {"k": [1]}}
        away = client.get("/away")
        assert (away.status_code, away.headers["location"]) == (302, "/greet/Zo%C3%AB")
        assert away.headers["x-moved"] == "yes"


def test_a_0x_websocket_middleware_refuses_with_its_dict(old_app: RunningServer) -> None:
    with ws_connect(f"{old_app.ws_url}/echo?user=ada", timeout=TIMEOUT) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == "echo: hi"
    with (
        ws_connect(f"{old_app.ws_url}/echo", timeout=TIMEOUT) as ws,
        pytest.raises(ClientClosed) as closed,
    ):
        ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "who are you?")


def test_mount_serves_starlette_over_http_and_websocket(mounting_app: RunningServer) -> None:
    with http(mounting_app) as client:
        assert client.get("/").text == "micropie"
        assert client.get("/star/hello").text == "starlette at /star/hello, root /star"
        assert client.get("/star/nothing").status_code == 404  # Starlette's own 404
    with ws_connect(f"{mounting_app.ws_url}/star/shout", timeout=TIMEOUT) as ws:
        ws.send("quiet")
        assert ws.recv(timeout=TIMEOUT) == "QUIET"


def test_mount_serves_python_socketio(mounting_app: RunningServer) -> None:
    with http(mounting_app) as client:
        opened = client.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert opened.status_code == 200
    # Engine.IO's open packet: "0" and a JSON object naming the session.
    assert opened.text.startswith("0{") and '"sid"' in opened.text
