"""MQTT output with Home Assistant discovery: labels and events where people already look.

Topics, under ``{prefix}/{sensor_id}`` (several sensors share one broker):

* ``availability``: ``online`` / ``offline``, retained; ``offline`` is the broker's Last Will,
  so a sensor that dies or loses power shows as unavailable.
* ``{source}/state``: the decision, label, score, top scores, level and counters as JSON,
  retained, at most once per ``state_interval_s`` (and at once when the decision changes).
* ``{source}/event``: one JSON object per event start and end (as ``listen --jsonl``).
* ``detection`` / ``detection/set``: a switch that pauses detection (``OFF``) and resumes it
  (``ON``); listen keeps reading audio but publishes ``paused`` instead of labels.

Home Assistant discovery configs (``homeassistant/<component>/<id>/config``, retained) give a
device with a scene sensor, a level sensor and an event entity per source, and the switch.

The audio path never waits for the network: :meth:`MqttSink.update` only puts a message into a
bounded queue (full: dropped and counted); a publisher thread hands them to paho-mqtt, whose
own thread keeps the connection and reconnects with back-off (1 s doubling to 30 s). Messages
that cannot be sent while the broker is away are counted in :attr:`MqttSink.unsent`, which is
reported in every state message, in the metrics and in the summary.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from edge_asc import __version__
from edge_asc.decision import UNKNOWN
from edge_asc.errors import EdgeAscError
from edge_asc.sinks.base import Sink

if TYPE_CHECKING:
    from edge_asc.events import EventChange
    from edge_asc.listen import Update

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


class MqttError(EdgeAscError):
    """An MQTT setting that cannot be used; one line."""


def topic_part(text: str) -> str:
    """``text`` as one safe topic level / entity id (letters, digits, ``_`` and ``-``)."""
    return _SAFE.sub("_", text).strip("_") or "source"


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish.

    Attributes
    ----------
    host, port : str, int
        The broker.
    tls : bool
        ``mqtts://``: TLS, verified against ``ca_file`` (or the system's CAs).
    username, password : str or None
        Credentials from the URL.
    prefix : str
        First topic level.
    sensor_id : str
        This sensor's topic level and Home Assistant device id.
    discovery_prefix : str
        Home Assistant's discovery prefix (empty: no discovery).
    state_interval_s : float
        Least seconds between two state messages of one source (decision changes go at once).
    ca_file : str or None
        CA certificate file for TLS.
    max_pending : int
        Messages waiting for the publisher before new ones are dropped.
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    prefix: str = "edge-asc"
    sensor_id: str = "edge-asc"
    discovery_prefix: str = "homeassistant"
    state_interval_s: float = 5.0
    ca_file: str | None = None
    max_pending: int = 1000

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MqttSettings:
        """Settings from ``mqtt[s]://[USER:PASS@]HOST[:PORT]`` and keyword options."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise MqttError(
                f"the MQTT broker must look like mqtt://[USER:PASS@]HOST[:PORT], got {url!r}"
            )
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise MqttError(f"bad port in MQTT URL {url!r}") from None
        interval = float(options.get("state_interval_s", 5.0))
        if not 0 <= interval <= 86400:
            raise MqttError(f"the MQTT state interval must be 0 to 86400 s, got {interval}")
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            **options,
        )

    @property
    def base(self) -> str:
        """``{prefix}/{sensor_id}``."""
        return f"{self.prefix}/{topic_part(self.sensor_id)}"


class MqttSink(Sink):
    """Publish updates and events to an MQTT broker (see the module docstring).

    Parameters
    ----------
    settings : MqttSettings
        Broker, topics and limits.
    labels : sequence of str
        The model's classes (for the event entity's event types).
    sources : sequence of str
        Names of the sources that will publish (one set of entities each).
    model : str
        The bundle's name, shown on the Home Assistant device.

    Attributes
    ----------
    unsent : int
        Messages that could not be sent (broker away, queue full).
    published : int
        Messages handed to the broker.
    paused : threading.Event
        Set while detection is switched off (from Home Assistant or ``detection/set``).
    """

    def __init__(
        self, settings: MqttSettings, labels: list[str], sources: list[str], model: str
    ) -> None:
        self.settings = settings
        self.labels, self.sources, self.model = list(labels), list(sources), model
        self.unsent = 0
        self.published = 0
        self.paused = threading.Event()
        self._queue: queue.Queue[tuple[str, str, bool, int] | None] = queue.Queue(
            maxsize=settings.max_pending
        )
        self._last_state: dict[str, tuple[float, str]] = {}
        self._connected = threading.Event()
        self._client: Any = None
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Start paho's network thread (connecting in the background) and the publisher."""
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MqttError("MQTT output needs paho-mqtt: pip install paho-mqtt") from None
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"edge-asc-{topic_part(s.sensor_id)}",
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            try:
                client.tls_set(ca_certs=s.ca_file)
            except (OSError, ValueError) as exc:
                raise MqttError(f"cannot use the MQTT CA file {s.ca_file!r}: {exc}") from None
        client.will_set(f"{s.base}/availability", "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect_async(s.host, s.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot reach MQTT broker {s.host}:{s.port}: {exc}") from None
        client.loop_start()
        self._thread = threading.Thread(
            target=self._publish_loop, name="edge-asc-mqtt", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Publish ``offline`` (a clean stop is not a Last Will), drain and disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
        if self._connected.is_set():
            info = client.publish(f"{self.settings.base}/availability", "offline", 1, True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()

    # -- what the listen loop calls -------------------------------------------------------------

    def update(self, update: Update) -> None:
        """Queue the state (rate-limited) and the update's events; never waits."""
        for change in update.events:
            self._emit(
                f"{self._source_base(update.source)}/event", self._event(change, update.source)
            )
        decision = "paused" if self.paused.is_set() else update.decision
        last_t, last_decision = self._last_state.get(update.source, (-1e18, ""))
        now = time.monotonic()
        if decision == last_decision and now - last_t < self.settings.state_interval_s:
            return
        self._last_state[update.source] = (now, decision)
        top = sorted(update.scores.items(), key=lambda kv: -kv[1])[:3]
        state = {
            "decision": decision,
            "label": update.label,
            "score": round(update.score, 4),
            "top": {name: round(score, 4) for name, score in top},
            "level_dbfs": round(update.level_dbfs, 1) if update.level_dbfs > -1e9 else None,
            "audio_s": round(update.audio_s, 3),
            "dropped_blocks": update.dropped_blocks,
            "mqtt_unsent": self.unsent,
            "t": round(update.t, 3),
        }
        self._emit(f"{self._source_base(update.source)}/state", state, retain=True)

    def events(self, changes: list[EventChange], source: str) -> None:
        """Queue events that ended with the stream."""
        for change in changes:
            self._emit(f"{self._source_base(source)}/event", self._event(change, source))

    # -- internals ------------------------------------------------------------------------------

    def _source_base(self, source: str) -> str:
        return f"{self.settings.base}/{topic_part(source)}"

    @staticmethod
    def _event(change: EventChange, source: str) -> dict[str, Any]:
        data = change.to_dict()
        data["source"] = source
        # Home Assistant's event entity fires on event_type: "dog" starts, "dog_ended" ends.
        label = change.event.label
        data["event_type"] = label if change.kind == "start" else f"{label}_ended"
        return data

    def _emit(self, topic: str, payload: Any, retain: bool = False, qos: int = 0) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        try:
            self._queue.put_nowait((topic, text, retain, qos))
        except queue.Full:
            self.unsent += 1

    def _publish_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            client = self._client
            if client is None or not self._connected.is_set():
                self.unsent += 1
                continue
            topic, text, retain, qos = item
            info = client.publish(topic, text, qos=qos, retain=retain)
            if info.rc == 0:
                self.published += 1
            else:
                self.unsent += 1

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        base = self.settings.base
        client.subscribe(f"{base}/detection/set", qos=1)
        client.publish(f"{base}/availability", "online", qos=1, retain=True)
        client.publish(f"{base}/detection", "OFF" if self.paused.is_set() else "ON", 1, True)
        for topic, config in self.discovery().items():
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._last_state.clear()  # send the current state with the next update
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        command = message.payload.decode("utf-8", "replace").strip().upper()
        if command in ("ON", "OFF"):
            if command == "OFF":
                self.paused.set()
                # No updates come while paused: say so now, on every source's state topic.
                for source in self.sources:
                    paused = {"decision": "paused", "mqtt_unsent": self.unsent, "t": time.time()}
                    self._emit(f"{self._source_base(source)}/state", paused, retain=True)
                    self._last_state[source] = (time.monotonic(), "paused")
            else:
                self.paused.clear()
            client.publish(f"{self.settings.base}/detection", command, qos=1, retain=True)

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant discovery configs by topic (empty when discovery is off)."""
        s = self.settings
        if not s.discovery_prefix:
            return {}
        sensor = topic_part(s.sensor_id)
        device = {
            "identifiers": [f"edge_asc_{sensor}"],
            "name": f"edge-asc {s.sensor_id}",
            "manufacturer": "edge-asc",
            "model": self.model,
            "sw_version": __version__,
        }
        common = {"availability_topic": f"{s.base}/availability", "device": device}
        events = [label for label in self.labels if label != UNKNOWN]  # a background class
        configs: dict[str, dict[str, Any]] = {
            f"{s.discovery_prefix}/switch/{sensor}_detection/config": {
                **common,
                "name": "Detection",
                "unique_id": f"{sensor}_detection",
                "command_topic": f"{s.base}/detection/set",
                "state_topic": f"{s.base}/detection",
                "icon": "mdi:ear-hearing",
            }
        }
        for source in self.sources:
            part = topic_part(source)
            state = f"{s.base}/{part}/state"
            configs[f"{s.discovery_prefix}/sensor/{sensor}_{part}_scene/config"] = {
                **common,
                "name": f"{source} scene",
                "unique_id": f"{sensor}_{part}_scene",
                "state_topic": state,
                "value_template": "{{ value_json.decision }}",
                "json_attributes_topic": state,
                "icon": "mdi:waveform",
            }
            configs[f"{s.discovery_prefix}/sensor/{sensor}_{part}_level/config"] = {
                **common,
                "name": f"{source} sound level",
                "unique_id": f"{sensor}_{part}_level",
                "state_topic": state,
                "value_template": "{{ value_json.level_dbfs }}",
                "unit_of_measurement": "dBFS",
                "state_class": "measurement",
                "icon": "mdi:volume-high",
            }
            configs[f"{s.discovery_prefix}/event/{sensor}_{part}_detection/config"] = {
                **common,
                "name": f"{source} detection",
                "unique_id": f"{sensor}_{part}_detection",
                "state_topic": f"{s.base}/{part}/event",
                "event_types": [*events, *(f"{label}_ended" for label in events)],
            }
        return configs
