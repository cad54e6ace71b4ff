"""The exception for a service the application needs that cannot be reached now."""

from __future__ import annotations

import math

__all__ = ["Unavailable"]


class Unavailable(RuntimeError):
    """A service the application depends on (a session store, a broadcast
    backend) cannot be reached now; *retry_after* is the seconds after which
    trying again makes sense.

    MicroPie answers it rather than failing: over HTTP with 503 and a
    ``Retry-After`` header, whether a session backend or a handler raised it;
    on a WebSocket, by accepting the connection and closing it with code 1013
    (try again later), so that a browser's page can tell to reconnect. The
    traceback does not go to the log: whoever raises it says what went wrong,
    once.
    """

    __module__ = "micropie"

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        if not retry_after > 0:
            raise ValueError(f"retry_after must be positive, got {retry_after!r}")
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> bytes:
        """The ``Retry-After`` value: whole seconds, rounded up."""
        return str(math.ceil(self.retry_after)).encode("ascii")
