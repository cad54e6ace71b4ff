"""A chat over Socket.IO: python-socketio mounted in a MicroPie App.

Save it as ``app.py``, install python-socketio and serve it with
``uvicorn app:app``. MicroPie answers ``/`` and ``/who/<room>``; the
Socket.IO server, mounted at ``/socket.io``, takes these events:

* ``join`` with ``{"name": ..., "room": ...}``: the room hears ``joined``
  with ``{"name": ...}``, and the acknowledgement lists who is in it;
* ``say`` with a text: the room, the sender too, hears ``said`` with
  ``{"name": ..., "text": ...}``, in the order each member said things;
* a member who disconnects: the room hears ``left`` with ``{"name": ...}``.

Anything else the client sends is answered with ``refused`` and the reason.
"""

from dataclasses import dataclass
from typing import Any

import socketio  # type: ignore[import-untyped]

from micropie import App

#: The longest name and room name, and the longest line, in characters.
MAX_NAME = 32
MAX_TEXT = 1000


@dataclass(frozen=True)
class Member:
    name: str
    room: str


def text_of(value: object, limit: int) -> str | None:
    """*value* stripped, if it is text of 1 to *limit* characters; else None."""
    if isinstance(value, str) and 0 < len(value.strip()) <= limit:
        return value.strip()
    return None


class SocketChat(App):
    def __init__(self) -> None:
        super().__init__()
        # async_handlers=False: a client's events are handled one after the
        # other, so the room hears its lines in the order it sent them.
        self.sio = socketio.AsyncServer(async_mode="asgi", async_handlers=False)
        self.sio.on("join", self._join)
        self.sio.on("say", self._say)
        self.sio.on("disconnect", self._leave)
        self.members: dict[str, Member] = {}  # by Socket.IO session id
        # The path stays whole below a mount, so Engine.IO still sees the
        # "/socket.io/" it expects. It gets no lifespan events: the App's
        # shutdown stops its background task.
        self.mount("/socket.io", socketio.ASGIApp(self.sio))
        self.shutdown_handlers.append(self.sio.shutdown)

    def index(self) -> str:
        return "A Socket.IO chat: connect a Socket.IO client here and emit 'join'.\n"

    def who(self, room: str) -> list[str]:
        return sorted(member.name for member in self.members.values() if member.room == room)

    # The leading underscores keep these methods from becoming routes.
    async def _join(self, sid: str, *args: Any) -> list[str] | None:
        if sid in self.members:
            await self._refuse(sid, "join", "joined already; reconnect to change rooms")
            return None
        details = args[0] if len(args) == 1 and isinstance(args[0], dict) else {}
        name = text_of(details.get("name"), MAX_NAME)
        room = text_of(details.get("room"), MAX_NAME)
        if name is None or room is None:
            reason = f"send {{'name': ..., 'room': ...}}, each 1 to {MAX_NAME} characters"
            await self._refuse(sid, "join", reason)
            return None
        self.members[sid] = Member(name, room)
        await self.sio.enter_room(sid, room)
        await self.sio.emit("joined", {"name": name}, to=room)
        return self.who(room)

    async def _say(self, sid: str, *args: Any) -> None:
        member = self.members.get(sid)
        text = text_of(args[0], MAX_TEXT) if len(args) == 1 else None
        if member is None:
            await self._refuse(sid, "say", "join a room first")
        elif text is None:
            await self._refuse(sid, "say", f"say one text of 1 to {MAX_TEXT} characters")
        else:
            await self.sio.emit("said", {"name": member.name, "text": text}, to=member.room)

    async def _leave(self, sid: str, reason: object = None) -> None:
        member = self.members.pop(sid, None)
        if member is not None:
            await self.sio.emit("left", {"name": member.name}, to=member.room, skip_sid=sid)

    async def _refuse(self, sid: str, event: str, reason: str) -> None:
        await self.sio.emit("refused", {"event": event, "reason": reason}, to=sid)


app = SocketChat()
