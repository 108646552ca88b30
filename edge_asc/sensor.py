"""A sensor: one or more audio sources, one model load, every update to every output.

``edge-asc listen`` builds one from the config file and the command line. Each source gets its
own listener (its own streaming state, the models shared and used by one at a time) and, when
there are several, its own worker thread, so a slow camera stream never holds up the
microphone. The outputs (sinks) are shared; each says in its updates which source it heard.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from edge_asc.bundle import Bundle
from edge_asc.config import ListenSettings, SourceSettings
from edge_asc.decision import OpenSetDecision
from edge_asc.listen import Listener, summary
from edge_asc.sinks import Sink
from edge_asc.sources import BlockSource, ModelRateSource, microphone_source, replay_source
from edge_asc.sources.ffmpeg import FfmpegSource, is_stream_url


def open_source(spec: SourceSettings, sample_rate: int, realtime: bool) -> BlockSource:
    """The source ``spec`` names: a stream URL (FFmpeg), an audio file, or a microphone."""
    if spec.input is not None and is_stream_url(spec.input):
        return FfmpegSource(spec.input, sample_rate, name=spec.name)
    if spec.input is not None:
        source: BlockSource = replay_source(Path(spec.input), realtime=realtime)
    else:
        source = microphone_source(spec.device, sample_rate)
    if spec.name:
        source.name = spec.name
    return source


class Sensor:
    """Listeners for every source of ``settings``, fed to ``sinks``.

    Parameters
    ----------
    bundle : Bundle
        The loaded model bundle (its spectrograms already selected).
    settings : ListenSettings
        Sources, window, thresholds, ...
    decision : OpenSetDecision
        Level gate and thresholds.
    paused : threading.Event, optional
        While set, the listeners discard audio instead of classifying it.
    """

    def __init__(
        self,
        bundle: Bundle,
        settings: ListenSettings,
        decision: OpenSetDecision,
        paused: threading.Event | None = None,
    ) -> None:
        specs = settings.sources or (SourceSettings(),)
        self.listeners: list[Listener] = []
        self.sources: list[ModelRateSource] = []
        for spec in specs:
            listener = Listener(
                bundle,
                window_s=settings.window,
                fusion=settings.fusion,
                threads=settings.threads,
                backend=settings.backend,
                decision=decision,
                max_not_heard_s=settings.max_not_heard,
                share_models=self.listeners[0] if self.listeners else None,
            )
            listener.paused = paused
            raw = open_source(spec, listener.sample_rate, settings.realtime)
            self.listeners.append(listener)
            self.sources.append(listener.source(raw, settings.duration))

    @property
    def source_names(self) -> list[str]:
        """The sources' names, in order."""
        return [source.name for source in self.sources]

    def queue_depths(self) -> dict[str, int]:
        """Blocks waiting in each source's queue."""
        return {source.name: len(source.source.queue) for source in self.sources}

    def run(self, sinks: Sequence[Sink]) -> None:
        """Listen until every source ends (or Ctrl-C); sources are started and stopped here."""
        for source in self.sources:
            source.source.start()
        try:
            if len(self.sources) == 1:
                self.listeners[0].run(self.sources[0], sinks)
                return
            errors: list[BaseException] = []

            def work(listener: Listener, source: ModelRateSource) -> None:
                try:
                    listener.run(source, sinks)
                except BaseException as exc:  # re-raised in the main thread
                    errors.append(exc)

            threads = [
                threading.Thread(
                    target=work, args=pair, name=f"edge-asc-{pair[1].name}", daemon=True
                )
                for pair in zip(self.listeners, self.sources, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)  # short waits keep Ctrl-C responsive
            if errors:
                raise errors[0]
        finally:
            for source in self.sources:
                source.source.stop()
                source.source.queue.close()

    def summaries(self) -> list[str]:
        """One line per source for stderr when listening ends."""
        return [
            summary(listener, source)
            for listener, source in zip(self.listeners, self.sources, strict=True)
        ]
