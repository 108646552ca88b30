"""Where audio comes from: the microphone, a replayed file, and one interface for both.

Every source is a :class:`BlockSource` (blocks of float32 at a known rate, a drop counter);
:class:`ModelRateSource` turns any of them into mono blocks at the model's rate.
"""

from edge_asc.sources.base import BlockQueue, BlockSource
from edge_asc.sources.devices import (
    InputDevice,
    ListenError,
    list_input_devices,
    match_device,
    open_device,
)
from edge_asc.sources.microphone import MicrophoneSource, microphone_source
from edge_asc.sources.model_rate import ModelRateSource
from edge_asc.sources.replay import BLOCK_FRAMES, ReplaySource, replay_source

__all__ = [
    "BLOCK_FRAMES",
    "BlockQueue",
    "BlockSource",
    "InputDevice",
    "ListenError",
    "MicrophoneSource",
    "ModelRateSource",
    "ReplaySource",
    "list_input_devices",
    "match_device",
    "microphone_source",
    "open_device",
    "replay_source",
]
