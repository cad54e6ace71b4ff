"""Streams that print what they do, for tests/e2e/test_sse_disconnect_e2e.py.

Served with ``uvicorn tests.helpers.apps.streams_app:app`` from the repository root.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

from micropie import App


class Recorder(App):
    """Streams that print what they do; *token* tells one request's lines from another's."""

    async def waiting(self, token: str) -> AsyncIterator[str]:
        try:
            for n in itertools.count():
                print(f"step {token} {n}", flush=True)
                yield f"tick {n}\n"
                await asyncio.sleep(0.02 if n < 3 else 3600)
        finally:
            print(f"finally {token}", flush=True)

    def endless(self, token: str) -> Iterator[bytes]:
        """Never waits: a download of endless zeros."""
        try:
            for n in itertools.count():
                if n % 1000 == 0:
                    print(f"step {token} {n}", flush=True)
                yield bytes(4096)
        finally:
            print(f"finally {token}", flush=True)

    async def finite(self, token: str) -> AsyncIterator[str]:
        for n in range(50):
            yield f"line {n}\n"
            await asyncio.sleep(0)

    def marker(self, token: str) -> str:
        print(f"marker {token}", flush=True)
        return "marked"


app = Recorder()
