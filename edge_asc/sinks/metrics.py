"""Prometheus metrics of a running sensor, served over HTTP (``listen --metrics``).

What an operator watches on a dashboard or alerts on: updates and events per label, compute
time per update, the real-time factor, dropped blocks and queue depth (is the device keeping
up?), the current level, whether MQTT is connected and how much it could not send, and which
model and version run. Every metric but the info has a ``source`` label.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

from edge_asc import __version__
from edge_asc.errors import EdgeAscError
from edge_asc.sinks.base import Sink

if TYPE_CHECKING:
    from edge_asc.events import EventChange
    from edge_asc.listen import Update
    from edge_asc.sinks.mqtt import MqttSink

COMPUTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Histogram buckets of compute seconds per update."""


class MetricsError(EdgeAscError):
    """A metrics endpoint that cannot be served; one line."""


class MetricsSink(Sink):
    """Serve Prometheus metrics at ``http://HOST:PORT/metrics``.

    Parameters
    ----------
    host, port : str, int
        Where to listen (port 0: any free port, see :attr:`port`).
    model : str
        The bundle's name (``edge_asc_info``).
    backend : str
        The models' runtime (``edge_asc_info``).
    mqtt : MqttSink, optional
        Whose connection and unsent count to export.
    queue_depth : callable, optional
        Returns ``{source: blocks waiting}``, read at scrape time.
    """

    def __init__(
        self,
        host: str,
        port: int,
        model: str,
        backend: str,
        mqtt: MqttSink | None = None,
        queue_depth: Any = None,
    ) -> None:
        self.host, self.port = host, port
        self.model, self.backend, self.mqtt, self.queue_depth = model, backend, mqtt, queue_depth
        self._server: Any = None
        self._last_audio: dict[str, float] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Create the metrics and start the HTTP server."""
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
            from prometheus_client.exposition import start_http_server
        except ImportError:
            raise MetricsError(
                "metrics need prometheus-client: pip install prometheus-client"
            ) from None
        self.registry = registry = CollectorRegistry()
        labels = ["source"]
        self.updates = Counter("edge_asc_updates", "Label updates.", labels, registry=registry)
        self.event_count = Counter(
            "edge_asc_events", "Events started, per label.", ["source", "label"], registry=registry
        )
        self.compute = Histogram(
            "edge_asc_compute_seconds",
            "Compute time per update (resampling, spectrograms, models).",
            labels,
            buckets=COMPUTE_BUCKETS,
            registry=registry,
        )
        self.rtf = Gauge(
            "edge_asc_real_time_factor",
            "Compute seconds per second of audio, over the last update.",
            labels,
            registry=registry,
        )
        self.dropped = Gauge(
            "edge_asc_dropped_blocks", "Audio blocks dropped so far.", labels, registry=registry
        )
        self.level = Gauge(
            "edge_asc_level_dbfs", "Level of the newest patch.", labels, registry=registry
        )
        self.audio = Gauge(
            "edge_asc_audio_seconds", "Audio heard so far.", labels, registry=registry
        )
        depth = Gauge(
            "edge_asc_queue_depth", "Blocks waiting for the worker.", labels, registry=registry
        )
        if self.queue_depth is not None:
            for source in self.queue_depth():
                depth.labels(source).set_function(
                    lambda source=source: self.queue_depth().get(source, 0)
                )
        if self.mqtt is not None:
            mqtt = self.mqtt
            Gauge(
                "edge_asc_mqtt_connected",
                "1 while the MQTT broker is connected.",
                registry=registry,
            ).set_function(lambda: float(mqtt.connected))
            Gauge(
                "edge_asc_mqtt_unsent", "MQTT messages that could not be sent.", registry=registry
            ).set_function(lambda: float(mqtt.unsent))
        Info("edge_asc", "Model and version.", registry=registry).info(
            {"version": __version__, "model": self.model, "backend": self.backend}
        )
        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            raise MetricsError(
                f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.port = self._server.server_port

    def update(self, update: Update) -> None:
        """Count the update and its events."""
        with self._lock:
            source = update.source
            self.updates.labels(source).inc()
            self.compute.labels(source).observe(update.compute_ms / 1000)
            step = update.audio_s - self._last_audio.get(source, 0.0)
            self._last_audio[source] = update.audio_s
            if step > 0:
                self.rtf.labels(source).set(update.compute_ms / 1000 / step)
            self.dropped.labels(source).set(update.dropped_blocks)
            self.audio.labels(source).set(update.audio_s)
            if math.isfinite(update.level_dbfs):
                self.level.labels(source).set(update.level_dbfs)
            for change in update.events:
                if change.kind == "start":
                    self.event_count.labels(source, change.event.label).inc()

    def events(self, changes: list[EventChange], source: str) -> None:
        """Nothing to count: only starts are counted."""

    def close(self) -> None:
        """Stop the HTTP server."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
