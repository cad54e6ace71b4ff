"""The client's side of tests/helpers/apps/load_app.py: its figures, read at ``/stats``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def stats(http: httpx.AsyncClient, *, census: bool = False) -> dict[str, Any]:
    """The app's figures; with *census*, the objects alive after a garbage collection too."""
    response = await http.get("/stats", params={"census": "1" if census else "0"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def settled(http: httpx.AsyncClient, tasks: int, timeout: float) -> dict[str, Any]:
    """Wait until no handler runs and the server is back to *tasks* asyncio tasks; return
    its figures then, with a census (or once *timeout* has passed: the caller's
    assertions say what was left).

    The handler's own count drops before the framework has saved its session
    and closed, so the server's tasks (one per connection, ending after both)
    are what tells that everything has finished, and logged all it would log.
    """
    deadline = time.monotonic() + timeout
    while True:
        figures = await stats(http)
        if figures["active_total"] == 0 and figures["tasks"] <= tasks:
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return await stats(http, census=True)
