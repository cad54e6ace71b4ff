"""The smallest MicroPie app: a WebSocket at /echo that sends every message back.

Save it as ``app.py``, serve it with ``uvicorn app:app`` and connect to
ws://127.0.0.1:8000/echo.
"""

from micropie import App, MessageTypeError, WebSocket


class Echo(App):
    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        # Loops until the client leaves: receive_text() then raises
        # ConnectionClosed, which MicroPie takes as the handler's normal end.
        while True:
            try:
                await ws.send_text(await ws.receive_text())
            except MessageTypeError as binary:  # bytes arrived; they are in .data
                await ws.send_bytes(binary.data)


app = Echo()
