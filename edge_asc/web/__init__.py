"""``listen --web``: a dashboard served by the device itself, read-only, no internet needed.

The sink keeps the latest scene of each source, a few seconds of live spectrogram columns and
health figures; :mod:`edge_asc.web.app` serves them (and the event history) with Starlette,
and uvicorn runs in a background thread, stopped through ``should_exit``. It listens on
127.0.0.1 unless told otherwise, and beyond localhost only with a token.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_asc.config import parse_address
from edge_asc.errors import EdgeAscError
from edge_asc.sinks.base import Sink
from edge_asc.web.spectrogram import LiveSpectrogram

if TYPE_CHECKING:
    from edge_asc.listen import Update
    from edge_asc.sinks.history import HistorySink

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class WebError(EdgeAscError):
    """A dashboard that cannot be served as asked; one line."""


def is_local(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_web_address(text: str, token: str | None = None) -> tuple[str, int]:
    """``[HOST:]PORT`` as ``(host, port)`` (127.0.0.1 unless given); a token beyond localhost.

    Raises
    ------
    WebError
        A bad address, or one beyond localhost without a token.
    """
    host, number = parse_address(text, "--web", WebError)
    if not is_local(host) and not token:
        raise WebError(
            f"--web {text}: refusing to serve the dashboard beyond localhost without a token "
            "(--web-token or [web] token)"
        )
    return host, number


def _quiet_server_class() -> type:
    import asyncio

    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn's server, waking once a second instead of ten times when idle.

        Each wake-up of a thread costs the device CPU; the stock loop's 0.1 s tick (which only
        refreshes the Date header and checks ``should_exit``) alone cost 3 ms of CPU a second
        on the test machine, a tenth of what the model itself costs. Stopping takes up to a
        second more.
        """

        async def main_loop(self) -> None:
            should_exit = await self.on_tick(0)
            while not should_exit:
                await asyncio.sleep(1.0)
                should_exit = await self.on_tick(0)  # 0: refresh the Date header each time

    return QuietServer


class WebSink(Sink):
    """Serve the dashboard and its JSON API at ``http://HOST:PORT/``.

    Parameters
    ----------
    host, port : str, int
        Where to listen (port 0: any free port, see :attr:`port` after :meth:`open`).
    model, backend : str
        Shown in the health panel.
    sample_rate : int
        The tapped audio's rate.
    labels : list of str
        The model's labels.
    history : HistorySink, optional
        Whose database and clip folder the event API reads.
    token : str, optional
        Required from every request (``Authorization: Bearer`` or ``?token=``) when given.
    """

    def __init__(
        self,
        host: str,
        port: int,
        model: str,
        backend: str,
        sample_rate: int,
        labels: list[str],
        history: HistorySink | None = None,
        token: str | None = None,
    ) -> None:
        self.host, self.port, self.model, self.backend = host, port, model, backend
        self.sample_rate, self.labels, self.history, self.token = (
            sample_rate,
            labels,
            history,
            token,
        )
        self.lock = threading.Lock()
        self.sources: dict[str, dict[str, Any]] = {}
        self.spectrograms: dict[str, LiveSpectrogram] = {}
        self.events_seen = 0  # events started or ended: the page reloads its list on a change
        self.started = time.time()
        self.clients = 0
        self.stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start uvicorn in a background thread and wait until it listens."""
        import uvicorn

        from edge_asc.web.app import create_app

        config = uvicorn.Config(
            create_app(self),
            host=self.host,
            port=self.port,
            log_level="error",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = _quiet_server_class()(config)
        self._thread = threading.Thread(target=self._server.run, name="edge-asc-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise WebError(f"--web: cannot listen on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        print(f"edge-asc: dashboard at http://{shown}:{self.port}/", file=sys.stderr, flush=True)

    def tap(self, source: str, block: np.ndarray, end_s: float) -> None:
        """The listener's ``audio_tap``: feed the source's live spectrogram."""
        with self.lock:
            live = self.spectrograms.get(source)
            if live is None:
                live = self.spectrograms[source] = LiveSpectrogram(self.sample_rate)
            live.push(block, end_s)

    def update(self, update: Update) -> None:
        """Keep the newest scene and the running health figures of the update's source."""
        top = sorted(update.scores.items(), key=lambda kv: kv[1], reverse=True)[:5]
        with self.lock:
            state = self.sources.setdefault(update.source, {"compute_s": 0.0, "updates": 0})
            state["compute_s"] += update.compute_ms / 1000
            state["updates"] += 1
            audio_s = max(update.audio_s, 1e-9)
            level = update.level_dbfs if np.isfinite(update.level_dbfs) else None
            state.update(
                {
                    "source": update.source,
                    "t": round(update.t, 3),
                    "audio_s": round(update.audio_s, 3),
                    "label": update.label,
                    "decision": update.decision,
                    "score": round(update.score, 4),
                    "top": [[k, round(v, 4)] for k, v in top],
                    "level_dbfs": None if level is None else round(level, 1),
                    "rtf": round(state["compute_s"] / audio_s, 4),
                    "dropped_blocks": update.dropped_blocks,
                    "overflows": update.overflows,
                }
            )
            self.events_seen += len(update.events)

    def events(self, changes: list, source: str) -> None:
        """Count the events the stream's end closed (the page reloads its list)."""
        with self.lock:
            self.events_seen += len(changes)

    def snapshot(self) -> dict[str, Any]:
        """``/api/state``: every source's scene and the health panel's figures."""
        with self.lock:
            sources = [
                {k: v for k, v in state.items() if k != "compute_s"}
                for state in self.sources.values()
            ]
            events_seen = self.events_seen
        history = self.history
        return {
            "model": self.model,
            "backend": self.backend,
            "uptime_s": round(time.time() - self.started, 1),
            "clients": self.clients,
            "events_seen": events_seen + (history.clips_written if history else 0),
            "events_stored": history.events_written if history else None,
            "clips_written": history.clips_written if history else None,
            "history": history is not None,
            "sources": sources,
        }

    def close(self) -> None:
        """Stop the server (streams end within a fraction of a second); safe to call twice."""
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
