"""Finding the microphone: PortAudio's input devices, matched by index or name.

Also the one place that imports sounddevice, so that a missing PortAudio library is one
line telling what to install rather than an ``OSError`` traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from edge_asc.errors import EdgeAscError
from edge_asc.native_stderr import native_stderr_silenced


class ListenError(EdgeAscError):
    """A device or stream problem the user can act on; ``str()`` is one line."""


def sounddevice_module() -> ModuleType:
    """Import sounddevice, or say in one line what is missing."""
    try:
        with native_stderr_silenced():  # ALSA's probing chatter would break one-line output
            import sounddevice
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise ListenError(
            f"the microphone needs the PortAudio library ({exc}); on Debian or Ubuntu: "
            "apt-get install libportaudio2"
        ) from None
    except ImportError:
        raise ListenError("the microphone needs sounddevice: pip install sounddevice") from None
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio lists it."""

    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float
    is_default: bool


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order.

    Raises
    ------
    ListenError
        If sounddevice or the PortAudio library is missing.
    """
    sd = sounddevice_module()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise ListenError(f"cannot list audio devices: {exc}") from None
    try:
        default_index = int(default)
    except (TypeError, ValueError):  # a name was set as sounddevice's default
        default_index = -1
    if default_index < 0:
        # PortAudio's own default input (sd.default.device says -1 when it is not overridden)
        try:
            default_index = int(sd.query_devices(kind="input")["index"])
        except (sd.PortAudioError, ValueError, KeyError):
            default_index = -1
    out = []
    for device in devices:
        if int(device["max_input_channels"]) < 1:
            continue
        out.append(
            InputDevice(
                index=int(device["index"]),
                name=str(device["name"]),
                hostapi=str(hostapis[device["hostapi"]]["name"]),
                channels=int(device["max_input_channels"]),
                default_samplerate=float(device["default_samplerate"]),
                is_default=int(device["index"]) == default_index,
            )
        )
    return out


def _candidates(devices: Sequence[InputDevice], limit: int = 8) -> str:
    shown = ", ".join(f"{d.index} '{d.name}'" for d in devices[:limit])
    return shown if len(devices) <= limit else f"{shown} and {len(devices) - limit} more"


def match_device(spec: str | int | None, devices: Sequence[InputDevice]) -> InputDevice:
    """The input device that ``spec`` names.

    Parameters
    ----------
    spec : str, int or None
        ``None`` for the default input; an index; or a case-insensitive name or part of one
        (an exact name wins over partial matches).
    devices : sequence of InputDevice
        The input devices (see :func:`list_input_devices`).

    Raises
    ------
    ListenError
        No input device at all, no default, an unknown index or name, or a name that matches
        several devices (the message lists the candidates).
    """
    if not devices:
        raise ListenError(
            "no input device found: PortAudio sees no microphone (`edge-asc devices` lists "
            "what it sees)"
        )
    if spec is None:
        for device in devices:
            if device.is_default:
                return device
        raise ListenError(
            f"there is no default input device; pick one with --device ({_candidates(devices)})"
        )
    text = str(spec).strip()
    if text.isdigit():
        index = int(text)
        for device in devices:
            if device.index == index:
                return device
        raise ListenError(
            f"no input device has index {index}; input devices: {_candidates(devices)}"
        )
    wanted = text.casefold()
    exact = [d for d in devices if d.name.casefold() == wanted]
    matches = exact or [d for d in devices if wanted in d.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ListenError(
            f"no input device matches {text!r}; input devices: {_candidates(devices)}"
        )
    raise ListenError(
        f"input device name {text!r} is ambiguous: it matches {_candidates(matches)}; "
        "give the index"
    )


def open_device(spec: str | int | None) -> tuple[int, str, float]:
    """Find the input device ``spec`` names (see :func:`match_device`).

    Returns
    -------
    tuple
        ``(index, name, default_samplerate)``.
    """
    device = match_device(spec, list_input_devices())
    return device.index, device.name, device.default_samplerate


def stream_settings(index: int, model_rate: int, native_rate: float) -> tuple[float, int]:
    """The rate and channel count to open device ``index`` with.

    The model's rate when the device says it supports it (no resampling needed), otherwise
    its native rate (the worker resamples); one channel if allowed, else two (downmixed).
    """
    sd = sounddevice_module()
    max_channels = int(sd.query_devices(index)["max_input_channels"])

    def supported(rate: float, channels: int) -> bool:
        try:
            sd.check_input_settings(
                device=index, samplerate=rate, channels=channels, dtype="float32"
            )
        except (sd.PortAudioError, ValueError):
            return False
        return True

    channels = 1 if supported(native_rate, 1) else min(2, max_channels)
    rate = float(model_rate) if supported(model_rate, channels) else float(native_rate)
    return rate, channels
