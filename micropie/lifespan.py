"""The ASGI lifespan protocol: startup and shutdown handlers."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence

from micropie._asgi import Receive, Send

__all__ = ["LifespanHandler", "serve_lifespan"]

logger = logging.getLogger("micropie")

LifespanHandler = Callable[[], Awaitable[None] | None]


async def serve_lifespan(
    receive: Receive,
    send: Send,
    startup: Sequence[LifespanHandler],
    shutdown: Sequence[LifespanHandler],
    *,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run *startup* on ``lifespan.startup`` and *shutdown* on ``lifespan.shutdown``.

    A handler that raises is logged and reported as ``lifespan.*.failed``,
    which makes the server stop. *before_shutdown* runs before *shutdown*,
    and after a failed startup (it stops the application's background tasks).
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            phase, handlers = "startup", startup
        elif message["type"] == "lifespan.shutdown":
            phase, handlers = "shutdown", shutdown
        else:
            continue
        try:
            if phase == "shutdown" and before_shutdown is not None:
                await before_shutdown()  # first: tasks may use what the handlers close
            for handler in handlers:
                outcome = handler()
                if inspect.isawaitable(outcome):
                    await outcome
        except Exception as exc:
            logger.exception("a %s handler failed", phase)
            if phase == "startup" and before_shutdown is not None:
                await before_shutdown()  # what the handlers before it started
            await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
            return
        await send({"type": f"lifespan.{phase}.complete"})
        if phase == "shutdown":
            return
