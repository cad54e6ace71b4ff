"""A small site to watch MicroPie's log, which sets up logging itself.

Save this file as ``app.py`` and serve it with ``uvicorn app:app``.
"""

import logging

from micropie import App, WebSocket

# Before anything logs: every record of level INFO and above, to stderr.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class Site(App):
    def average(self, *numbers: str) -> str:
        """``/average/2/4`` answers 3; ``/average`` alone divides by zero, a bug."""
        values = [float(number) for number in numbers]
        return f"{sum(values) / len(values):g}"

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        while True:
            await ws.send_text(await ws.receive_text())


app = Site()
