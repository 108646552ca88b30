"""The live terminal view of ``listen``: label, top-3 bars, compute time, drops, level."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_asc.sinks.base import Sink

if TYPE_CHECKING:
    from edge_asc.listen import Update


class LiveViewSink(Sink):
    """A rich ``Live`` panel redrawn on every update.

    Parameters
    ----------
    source_name : str
        What is being listened to (panel title).
    first_patch_s : float
        Audio the models need before their first patch (shown while waiting).
    """

    def __init__(self, source_name: str, first_patch_s: float) -> None:
        self.source_name, self.first_patch_s = source_name, first_patch_s
        self._live: Any = None

    def open(self) -> None:
        """Show the waiting panel."""
        from rich.live import Live

        self._live = Live(render(None, self.source_name, self.first_patch_s), auto_refresh=False)
        self._live.start(refresh=True)

    def update(self, update: Update) -> None:
        """Redraw the panel."""
        if self._live is not None:
            self._live.update(render(update, self.source_name), refresh=True)

    def close(self) -> None:
        """Leave the last panel on screen."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()


def render(update: Update | None, source_name: str = "", waiting_s: float = 0.0) -> Any:
    """The live view of one update: label, top-3 bars, compute time, drops, audio heard.

    Parameters
    ----------
    update : Update or None
        The latest update; ``None`` before the first patch.
    source_name : str
        What is being listened to (panel title).
    waiting_s : float
        Before the first update: audio the models need for their first patch.

    Returns
    -------
    rich.panel.Panel
        A renderable for :class:`rich.live.Live`.
    """
    from rich.bar import Bar
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    title = f"edge-asc listen {source_name}".strip()
    if update is None:
        text = Text(f"waiting for the first patch ({waiting_s:.1f} s of audio) ...", style="dim")
        return Panel(text, title=title, title_align="left", expand=False)
    label = Text.assemble(
        (update.label, "bold green"), ("  steady label", "dim"), (f"  {update.score:.2f}", "")
    )
    bars = Table.grid(padding=(0, 1))
    bars.add_column(no_wrap=True)
    bars.add_column(width=30)
    bars.add_column(justify="right")
    for name, score in sorted(update.scores.items(), key=lambda kv: -kv[1])[:3]:
        style = "bold" if name == update.window_label else ""
        bars.add_row(
            Text(name, style=style), Bar(1.0, 0.0, score, width=30, color="cyan"), f"{score:.2f}"
        )
    footer = Text(
        f"compute {update.compute_ms:.1f} ms  |  dropped {update.dropped_blocks} blocks  |  "
        f"heard {update.audio_s:.1f} s  |  level {update.level_dbfs:.0f} dBFS",
        style="dim",
    )
    return Panel(
        Group(label, Text(""), bars, Text(""), footer),
        title=title,
        title_align="left",
        expand=False,
    )
