"""Dispatch skips what there is nothing to do for (a session without a cookie, a body
without a content type, a handler that takes no arguments, a socket closed already), and
the answers stay what they were when it did it all: these are the edges of those skips."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from micropie import App, ConnectionClosed, WebSocket
from micropie.testing import TestClient


class Uncomparable:
    """A session value whose comparison fails, as a NumPy array's does."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value of this comparison is ambiguous")

    __hash__ = object.__hash__


class Site(App):
    def store(self) -> str:
        self.request.session["thing"] = Uncomparable()
        return "stored"

    def look(self) -> str:
        return "looked"

    def plain(self) -> str:
        return f"{self.request.path} {self.request.query('q')}"

    def takes(self, word: str = "none") -> str:
        return word

    async def ws_look(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("hello")

    async def ws_closes(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(4000, "done")

    async def ws_takes(self, ws: WebSocket, word: str = "none") -> None:
        await ws.accept()
        await ws.send_text(word)


def micropie_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "micropie" and r.exc_info]


def test_a_session_that_cannot_be_compared_fails_the_request_with_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Site())
    assert client.get("/store").text == "stored"  # new: stored without comparing
    with caplog.at_level(logging.ERROR, logger="micropie"):
        response = client.get("/look")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert micropie_errors(caplog) == ["HTTP handler look failed"]


def test_a_session_that_cannot_be_compared_closes_the_websocket_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Site())
    client.get("/store")
    with (
        caplog.at_level(logging.ERROR, logger="micropie"),
        client.websocket_connect("/look") as ws,
    ):
        assert ws.receive_text() == "hello"
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1011, "Internal server error")
    assert micropie_errors(caplog) == ["saving the session after /look failed"]


def test_a_socket_the_handler_closed_is_not_closed_again() -> None:
    with TestClient(Site()).websocket_connect("/closes") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (4000, "done")
        with pytest.raises(ConnectionClosed):
            ws.receive_text()  # the one close frame, no second one


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/plain?q=x", "/plain x"),
        ("/takes?word=hi", "hi"),
        ("/takes", "none"),
        ("/takes/seg", "seg"),
    ],
)
def test_handlers_with_and_without_arguments(path: str, text: str) -> None:
    assert TestClient(Site()).get(path).text == text


@pytest.mark.parametrize(
    ("path", "text"), [("/takes?word=hi", "hi"), ("/takes/seg", "seg"), ("/look", "hello")]
)
def test_websocket_handlers_with_and_without_arguments(path: str, text: str) -> None:
    with TestClient(Site()).websocket_connect(path) as ws:
        assert ws.receive_text() == text


def test_a_body_is_parsed_by_its_content_type_and_not_without_one() -> None:
    class Echo(App):
        async def echo(self, word: str = "none") -> Any:
            body = (await self.request.body()).decode()
            return [word, self.request.json(), self.request.body_params, body]

    client = TestClient(Echo())
    response = client.post("/echo", json={"word": "hi"})
    assert response.json() == ["hi", {"word": "hi"}, {}, '{"word": "hi"}']
    response = client.post("/echo", form={"word": "form"})
    assert response.json() == ["form", None, {"word": ["form"]}, "word=form"]
    for headers in ([], [("Content-Type", "")]):
        response = client.post("/echo", body=b"word=form", headers=headers)
        assert response.json() == ["none", None, {}, "word=form"]
