"""A chat room: Starlette serves one HTML page and a WebSocket every browser tab joins.

Run from the repository root, then open http://127.0.0.1:8000 in two tabs:

    gunicorn -k asgi_worker.Worker -w 1 -b 127.0.0.1:8000 examples.chat.app:app

One worker, because the room lives in the process's memory: with ``-w 4`` each worker would be
a separate room (share it through Redis or similar to scale out).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

PAGE = (Path(__file__).resolve().parent / "index.html").read_text(encoding="utf-8")
HISTORY = 50
MAX_TEXT = 1000
MAX_NAME = 32
# A member whose browser stops reading must not hold up everyone else's messages.
SEND_TIMEOUT = 5.0


class Room:
    """Who is connected, and the recent messages a newcomer sees first."""

    def __init__(self) -> None:
        self.members: dict[WebSocket, str] = {}
        self.history: deque[str] = deque(maxlen=HISTORY)

    async def join(self, websocket: WebSocket, name: str) -> None:
        for line in self.history:
            await websocket.send_text(line)
        self.members[websocket] = name
        await self.say("system", f"{name} joined ({len(self.members)} here)")

    async def leave(self, websocket: WebSocket) -> None:
        name = self.members.pop(websocket, None)
        if name is not None:
            await self.say("system", f"{name} left")

    async def say(self, name: str, text: str) -> None:
        line = json.dumps({"name": name, "text": text, "time": time.time()})
        self.history.append(line)
        members = list(self.members)
        results = await asyncio.gather(
            *(asyncio.wait_for(member.send_text(line), SEND_TIMEOUT) for member in members),
            return_exceptions=True)
        for member, result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                # Gone or too slow: drop it; its own handler sees the disconnect.
                self.members.pop(member, None)


room = Room()


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def chat(websocket: WebSocket) -> None:
    name = (websocket.query_params.get("name") or "anonymous").strip()[:MAX_NAME] or "anonymous"
    await websocket.accept()
    await room.join(websocket, name)
    try:
        while True:
            text = (await websocket.receive_text()).strip()
            if text:
                await room.say(name, text[:MAX_TEXT])
    except WebSocketDisconnect:
        pass
    finally:
        await room.leave(websocket)


app = Starlette(routes=[Route("/", page), WebSocketRoute("/ws", chat)])
