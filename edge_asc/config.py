"""One TOML file for everything ``listen`` and the service take.

Read with the standard library (``tomllib``), checked key by key before anything starts: an
unknown key or a bad value is one line naming the key. Command-line options override the
file. ``deploy/jetson/edge-asc.toml`` is the documented example::

    model = "/var/lib/edge-asc/model.easc"   # default: the shipped model
    features = ["logmel", "cqt"]
    window = 3.0
    quiet_dbfs = -50.0
    threshold = 0.5                          # default: the bundle's fitted thresholds
    jsonl = true

    [thresholds]
    dog = 0.7

    [[sources]]
    name = "garden"
    input = "rtsp://camera.local:554/stream1"   # or device = "USB", or a file

    [mqtt]
    url = "mqtt://user:secret@broker.local:1883"
    sensor_id = "garden-pi"

    [metrics]
    listen = "0.0.0.0:9108"

    [events]
    db = "/var/lib/edge-asc/events.db"      # clips go to events-clips/ beside it
    no_clips_for = ["speech", "unknown"]    # privacy: these labels' audio is never written
    max_mb = 500                            # also: clips, pre_roll, post_roll, max_clip,
                                            # max_age_days, keep_last

    [web]
    listen = "127.0.0.1:8080"               # beyond localhost only with a token
    token = "long-random-string"
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_asc.errors import EdgeAscError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(EdgeAscError):
    """A config file that cannot be used; one line naming the file and the key."""


@dataclass(frozen=True)
class SourceSettings:
    """One audio source: a microphone (``device``) or anything FFmpeg or libsndfile reads."""

    name: str | None = None
    input: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class MqttOptions:
    """The ``[mqtt]`` table (see :class:`edge_asc.sinks.mqtt.MqttSettings`)."""

    url: str
    prefix: str = "edge-asc"
    sensor_id: str = "edge-asc"
    discovery_prefix: str = "homeassistant"
    state_interval: float = 5.0
    ca_file: str | None = None


@dataclass(frozen=True)
class EventsOptions:
    """The ``[events]`` table (see :mod:`edge_asc.sinks.history`)."""

    db: str
    clips: str | None = None  # default: "<db stem>-clips" beside the database
    pre_roll: float = 2.0
    post_roll: float = 2.0
    max_clip: float = 30.0
    max_age_days: float = 30.0
    max_mb: float = 500.0
    keep_last: int = 3
    no_clips_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebOptions:
    """The ``[web]`` table (see :mod:`edge_asc.web`)."""

    listen: str = "127.0.0.1:8080"
    token: str | None = None


@dataclass(frozen=True)
class ListenSettings:
    """Everything ``listen`` takes, from the config file and the command line."""

    model: str | None = None
    features: tuple[str, ...] | None = None
    fusion: str | None = None
    backend: str = "auto"
    threads: int | None = None
    window: float = 3.0
    quiet_dbfs: float | None = None
    threshold: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    max_not_heard: float = 5.0
    realtime: bool = False
    duration: float | None = None
    jsonl: bool = False
    sources: tuple[SourceSettings, ...] = ()
    mqtt: MqttOptions | None = None
    metrics: str | None = None
    trusted_keys: tuple[str, ...] = ()
    events: EventsOptions | None = None
    web: WebOptions | None = None


def parse_address(
    text: str, option: str, error: type[EdgeAscError] = ConfigError
) -> tuple[str, int]:
    """``[HOST:]PORT`` as ``(host, port)``; the host is 127.0.0.1 unless given.

    Raises
    ------
    EdgeAscError
        ``error`` (a :class:`ConfigError` by default), one line naming ``option``, when the
        text is no address.
    """
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise error(f"{option}: expected [HOST:]PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise error(f"{option}: port must be 0 to 65535, got {number}")
    return (host.strip("[]") or "127.0.0.1"), number


def _check(where: str, key: str, value: Any, kind: str) -> Any:
    """``value`` if it has the type ``kind`` names, else a one-line :class:`ConfigError`."""
    checks = {
        "str": lambda v: isinstance(v, str) and v != "",
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024,
        "seconds": lambda v: (
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0 < v <= 86400
        ),
        "seconds0": lambda v: (
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0 <= v <= 86400
        ),
        "dbfs": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and -200 <= v <= 0,
        "score": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
        "strings": lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
        "number": lambda v: (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        ),
        "count0": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**6,
    }
    expected = {
        "str": "a non-empty string",
        "bool": "true or false",
        "int": "a whole number from 1 to 1024",
        "seconds": "a number of seconds above 0",
        "seconds0": "a number of seconds, 0 or more",
        "dbfs": "a level in dBFS from -200 to 0",
        "score": "a score from 0 to 1",
        "strings": "a list of strings",
        "number": "a number above 0",
        "count0": "a whole number, 0 or more",
    }
    if not checks[kind](value):
        raise ConfigError(f"{where}: {key} must be {expected[kind]}, got {value!r}")
    return value


_TOP = {
    "model": "str",
    "features": "features",
    "fusion": "str",
    "backend": "str",
    "threads": "int",
    "window": "seconds",
    "quiet_dbfs": "dbfs",
    "threshold": "score",
    "thresholds": "table",
    "max_not_heard": "seconds0",
    "realtime": "bool",
    "duration": "seconds",
    "jsonl": "bool",
    "sources": "sources",
    "mqtt": "table",
    "metrics": "table",
    "trusted_keys": "strings",
    "events": "table",
    "web": "table",
}
_SOURCE = {"name": "str", "input": "str", "device": "str"}
_EVENTS = {
    "db": "str",
    "clips": "str",
    "pre_roll": "seconds0",
    "post_roll": "seconds0",
    "max_clip": "seconds",
    "max_age_days": "number",
    "max_mb": "number",
    "keep_last": "count0",
    "no_clips_for": "strings",
}
_WEB = {"listen": "str", "token": "str"}
_MQTT = {
    "url": "str",
    "prefix": "str",
    "sensor_id": "str",
    "discovery_prefix": "str",
    "state_interval": "seconds0",
    "ca_file": "str",
}


def _unknown(where: str, table: dict[str, Any], known: dict[str, str], prefix: str = "") -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {prefix + key!r} (known: {', '.join(sorted(known))})"
            )


def load_config(path: str | os.PathLike[str]) -> ListenSettings:
    """Read and check a config file.

    Raises
    ------
    ConfigError
        Missing or unreadable file, bad TOML, an unknown key or a bad value (one line).
    """
    where = f"config '{os.fsdecode(path)}'"
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where} does not exist or is not a regular file")
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} cannot be read: {exc}") from None
    _unknown(where, data, _TOP)
    settings: dict[str, Any] = {}
    for key, kind in _TOP.items():
        if key not in data:
            continue
        value = data[key]
        if kind == "features":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            settings[key] = tuple(_check(where, key, value, "strings"))
        elif kind == "table":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} must be a table ([{key}])")
            settings[key] = _table(where, key, value)
        elif kind == "sources":
            settings[key] = _sources(where, value)
        elif kind == "strings":
            settings[key] = tuple(_check(where, key, value, kind))
        else:
            settings[key] = _check(where, key, value, kind)
    return ListenSettings(**settings)


def _table(where: str, key: str, value: dict[str, Any]) -> Any:
    if key == "thresholds":
        return {
            label: float(_check(where, f"thresholds.{label}", score, "score"))
            for label, score in value.items()
        }
    if key == "metrics":
        _unknown(where, value, {"listen": "str"}, "metrics.")
        if "listen" not in value:
            raise ConfigError(f'{where}: [metrics] needs listen = "[HOST:]PORT"')
        return _check(where, "metrics.listen", str(value["listen"]), "str")
    if key in ("events", "web"):
        known = _EVENTS if key == "events" else _WEB
        _unknown(where, value, known, f"{key}.")
        if key == "events" and "db" not in value:
            raise ConfigError(f'{where}: [events] needs db = "PATH.db"')
        if key == "web" and "listen" in value:
            value = {**value, "listen": str(value["listen"])}
        options = {k: _check(where, f"{key}.{k}", v, known[k]) for k, v in value.items()}
        if "no_clips_for" in options:
            options["no_clips_for"] = tuple(options["no_clips_for"])
        return (EventsOptions if key == "events" else WebOptions)(**options)
    _unknown(where, value, _MQTT, "mqtt.")
    if "url" not in value:
        raise ConfigError(f'{where}: [mqtt] needs url = "mqtt://HOST[:PORT]"')
    options = {k: _check(where, f"mqtt.{k}", v, _MQTT[k]) for k, v in value.items()}
    return MqttOptions(**options)


def _sources(where: str, value: Any) -> tuple[SourceSettings, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"{where}: sources must be [[sources]] tables")
    out = []
    names: set[str] = set()
    for i, item in enumerate(value):
        _unknown(where, item, _SOURCE, f"sources[{i}].")
        fields = {k: _check(where, f"sources[{i}].{k}", v, "str") for k, v in item.items()}
        if "input" in fields and "device" in fields:
            raise ConfigError(f"{where}: sources[{i}] has both input and device; give one")
        source = SourceSettings(**fields)
        name = source.name or source.input or source.device or "microphone"
        if name in names:
            raise ConfigError(f"{where}: two sources are called {name!r}; give each a name")
        names.add(name)
        out.append(source)
    return tuple(out)
