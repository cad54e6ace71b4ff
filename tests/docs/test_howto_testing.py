"""What docs/source/howto/testing.rst says of pytest's own fixtures, checked under pytest."""

from __future__ import annotations

import logging

import pytest

from micropie import App, ConnectionClosed, WebSocket
from micropie.testing import TestClient


class Lobby(App):
    async def ws_lobby(self, ws: WebSocket, name: str) -> None:
        await ws.accept()
        logging.getLogger("rooms").info("%s joined the lobby", name)


class Fragile(App):
    async def ws_fragile(self, ws: WebSocket) -> None:
        await ws.accept()
        raise KeyError("missing")


def test_caplog_keeps_a_handler_log_once_the_level_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rooms")
    with TestClient(Lobby()).websocket_connect("/lobby/ada"):
        pass
    assert [record.getMessage() for record in caplog.records] == ["ada joined the lobby"]


def test_without_the_level_an_info_record_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    # The page's reason for setting the level: "rooms" inherits WARNING from the root.
    with TestClient(Lobby()).websocket_connect("/lobby/ada"):
        pass
    assert [r for r in caplog.records if r.name == "rooms"] == []


def test_caplog_keeps_the_failure_micropie_logs(caplog: pytest.LogCaptureFixture) -> None:
    with (
        TestClient(Fragile()).websocket_connect("/fragile") as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.receive_text()
    assert closed.value.code == 1011
    [record] = [r for r in caplog.records if r.name == "micropie"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "WebSocket handler ws_fragile failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)
