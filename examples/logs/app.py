"""A small site to watch MicroPie's log: a WebSocket echo, and a handler with a bug.

Save this file as ``app.py`` and serve it with
``uvicorn app:app --log-config logging.json``.
"""

from micropie import App, WebSocket


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
