"""The dashboard's Starlette app: one static page, a JSON API, a server-sent event stream.

Read-only: every route is a GET. Nothing a request names reaches the file system unchecked:
a clip is found by event id in the database, and served only if its resolved path lies in the
clip folder. With a token, every request must carry it (``Authorization: Bearer TOKEN``, or
``?token=TOKEN`` for what a browser fetches by itself: the event stream, images, audio).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from edge_asc.errors import EdgeAscError

if TYPE_CHECKING:
    from edge_asc.history.store import EventStore
    from edge_asc.web import WebSink

STREAM_INTERVAL_S = 0.5
"""Seconds between two messages of ``/api/stream``."""


def _since(text: str | None) -> float | None:
    if not text:
        return None
    from edge_asc.cli.history import parse_since

    try:
        return float(text)
    except ValueError:
        return parse_since(text)


class _TokenGate:
    """ASGI middleware: without the token, 401 (and no hint what it is)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = request.query_params.get("token", "")
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if not hmac.compare_digest(given.encode(), self.token):
                response = PlainTextResponse("token required\n", status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(sink: WebSink) -> Any:
    """The ASGI app serving ``sink``'s state and its history's events."""
    page = resources.files("edge_asc.web").joinpath("static/index.html").read_text("utf-8")
    stores: list[EventStore] = []

    def store() -> EventStore | None:
        if sink.history is None:
            return None
        if not stores:
            from edge_asc.history.store import EventStore

            stores.append(EventStore(sink.history.db, readonly=True))
        return stores[0]

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse(sink.snapshot())

    def events(request: Request) -> Response:
        db = store()
        params = request.query_params
        try:
            since = _since(params.get("since"))
            limit = min(int(params.get("limit", "100")), 1000)
        except (ValueError, EdgeAscError):
            return JSONResponse({"error": "bad since or limit"}, status_code=400)
        if db is None:
            return JSONResponse({"events": [], "labels": [], "minutes": []})
        rows = db.events(
            since=since, label=params.get("label") or None,
            source=params.get("source") or None, limit=limit,
        )  # fmt: skip
        minutes = db.minutes(since=since if since is not None else time.time() - 3600)
        return JSONResponse(
            {"events": [r.to_dict() for r in rows], "labels": db.labels(), "minutes": minutes}
        )

    def _clip_path(request: Request) -> Any:
        from edge_asc.history.clips import inside

        db = store()
        try:
            event_id = int(request.path_params["event_id"])
        except ValueError:
            return None
        event = db.event(event_id) if db is not None else None
        if event is None or not event.clip or sink.history is None:
            return None
        folder = sink.history.clips.folder
        return inside(folder, event.clip) if folder is not None else None

    def clip(request: Request) -> Response:
        path = _clip_path(request)
        if path is None:
            return JSONResponse({"error": "no clip for this event"}, status_code=404)
        return FileResponse(path, media_type="audio/flac")

    def spectrogram(request: Request) -> Response:
        import soundfile as sf

        from edge_asc.web.spectrogram import clip_image, colour, png

        path = _clip_path(request)
        if path is None:
            return JSONResponse({"error": "no clip for this event"}, status_code=404)
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        body = png(colour(clip_image(audio.mean(axis=1), rate)))
        return Response(body, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def stream(request: Request) -> Response:
        async def messages():
            sent: dict[str, int] = {}
            with sink.lock:
                sink.clients += 1
            try:
                while not sink.stopping.is_set():
                    columns = {}
                    with sink.lock:
                        lives = dict(sink.spectrograms)
                        for live in lives.values():
                            live.refresh()
                    for name, live in lives.items():
                        new = live.since(sent.get(name, 0))
                        if new:
                            sent[name] = new[-1][0] + 1
                            columns[name] = [values for _, values in new]
                    data = {"state": sink.snapshot(), "columns": columns}
                    yield f"data: {json.dumps(data)}\n\n"
                    await asyncio.sleep(STREAM_INTERVAL_S)  # a gone client cancels this
            finally:
                with sink.lock:
                    sink.clients -= 1

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/events", events),
        Route("/api/events/{event_id}/clip", clip),
        Route("/api/events/{event_id}/spectrogram.png", spectrogram),
        Route("/api/stream", stream),
    ]
    app: Any = Starlette(routes=routes)
    if sink.token:
        app = _TokenGate(app, sink.token)
    return app
