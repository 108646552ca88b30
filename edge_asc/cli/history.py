"""``edge-asc events``: the event history, listed, exported and pruned; and listen's wiring.

``listen --events PATH.db`` and ``listen --web`` are built here (:func:`history_settings`,
:func:`history_outputs`) so that the listen command only gains two lines.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from edge_asc.cli.common import UserError, app, key_list, user_errors


def history_settings(
    settings: Any,
    events: Path | None,
    no_clips_for: str | None,
    web: str | None,
    web_token: str | None,
) -> Any:
    """``settings`` with the ``--events``, ``--no-clips-for``, ``--web*`` options applied."""
    from edge_asc.config import EventsOptions, WebOptions

    options = settings.events
    if events is not None:
        options = dataclasses.replace(options, db=str(events)) if options else None
        options = options or EventsOptions(db=str(events))
    if no_clips_for is not None:
        if options is None:
            raise UserError("--no-clips-for needs --events (or [events] db)")
        labels = tuple(key_list(no_clips_for) or ())
        options = dataclasses.replace(options, no_clips_for=labels)
    web_options = settings.web
    if web is not None or web_token is not None:
        web_options = web_options or WebOptions()
        overrides = {"listen": web, "token": web_token}
        web_options = dataclasses.replace(
            web_options, **{k: v for k, v in overrides.items() if v is not None}
        )
    if web_options is not None:
        from edge_asc.web import parse_web_address

        parse_web_address(web_options.listen, web_options.token)  # fail before models load
    return dataclasses.replace(settings, events=options, web=web_options)


def history_outputs(settings: Any, sensor: Any, bundle: Any) -> list:
    """The history and web sinks ``settings`` asks for, with the listeners' audio tapped."""
    from edge_asc.history.clips import Retention
    from edge_asc.sinks.history import ClipSettings, HistorySink, default_clip_folder

    sinks: list = []
    taps = []
    history = None
    rate = sensor.listeners[0].sample_rate
    if settings.events is not None:
        options = settings.events
        db = Path(options.db)
        clips = ClipSettings(
            folder=Path(options.clips) if options.clips else default_clip_folder(db),
            pre_roll=options.pre_roll,
            post_roll=options.post_roll,
            max_clip=options.max_clip,
            no_clips_for=options.no_clips_for,
            retention=Retention(options.max_age_days, options.max_mb, options.keep_last),
        )
        history = HistorySink(db, bundle.path.stem, rate, clips, settings.max_not_heard)
        sinks.append(history)
        taps.append(history.tap)
    if settings.web is not None:
        from edge_asc.web import WebSink, parse_web_address

        host, port = parse_web_address(settings.web.listen, settings.web.token)
        web = WebSink(
            host,
            port,
            model=bundle.path.stem,
            backend=sensor.listeners[0].engine.backend,
            sample_rate=rate,
            labels=list(bundle.labels),
            history=history,
            token=settings.web.token,
        )
        sinks.append(web)
        taps.append(web.tap)
    if taps:

        def tap(source: str, block: Any, end_s: float) -> None:
            for each in taps:
                each(source, block, end_s)

        for listener in sensor.listeners:
            listener.audio_tap = tap
    return sinks


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: ``30m``, ``2h``, ``7d`` ago, or an ISO date/time (UTC if no zone)."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match:
        factor = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return now - float(match.group(1)) * factor
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--since: expected 30m, 2h, 7d or an ISO date, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@app.command("events")
def events_command(
    db: Annotated[Path, typer.Option(help="The event database (listen --events).")],
    since: Annotated[
        str | None, typer.Option(help="Only events since: 30m, 2h, 7d or an ISO date (UTC).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Only events of this label.")] = None,
    source: Annotated[str | None, typer.Option(help="Only events of this source.")] = None,
    format_: Annotated[
        str, typer.Option("--format", help="table, json (one object per line) or csv.")
    ] = "table",
    limit: Annotated[int | None, typer.Option(help="At most this many (newest).", min=1)] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Apply retention (age, disk, keep-last) now.")
    ] = False,
    clips: Annotated[
        Path | None, typer.Option(help="Clip folder (default: <db stem>-clips beside it).")
    ] = None,
    max_age_days: Annotated[
        float | None, typer.Option(help="--prune: delete what is older (days).", min=0.0)
    ] = None,
    max_mb: Annotated[
        float | None, typer.Option(help="--prune: keep the clips under this (MB).", min=0.0)
    ] = None,
    keep_last: Annotated[
        int, typer.Option(help="--prune: clips of each label always kept.", min=0)
    ] = 3,
) -> None:
    """List, export (json, csv) or prune the event history that `listen --events` keeps."""
    from edge_asc.history import EventStore, Retention
    from edge_asc.history import prune as apply_retention
    from edge_asc.sinks.history import default_clip_folder

    with user_errors():
        if format_ not in ("table", "json", "csv"):
            raise UserError(f"--format must be table, json or csv, got {format_!r}")
        if prune:
            store = EventStore(db)
            try:
                folder = clips or default_clip_folder(db)
                result = apply_retention(store, folder, Retention(max_age_days, max_mb, keep_last))
                store.compact()
            finally:
                store.close()
            typer.echo(
                f"edge-asc: pruned {result['events_deleted']} events, "
                f"{result['clips_deleted']} clips, {result['orphans_deleted']} stray files; "
                f"clips now {result['clip_bytes'] / 1e6:.1f} MB",
                err=True,
            )
            return
        store = EventStore(db, readonly=True)
        try:
            start = parse_since(since) if since else None
            rows = store.events(since=start, label=label, source=source, limit=limit)
        finally:
            store.close()
    rows.reverse()  # oldest first, like a log
    if format_ == "json":
        for row in rows:
            typer.echo(json.dumps(row.to_dict()))
    elif format_ == "csv":
        fields = list(rows[0].to_dict()) if rows else ["id"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.to_dict())
    else:
        header = f"{'id':>6}  {'start (UTC)':19}  {'dur s':>6}  {'peak':>5}  source / label / clip"
        typer.echo(header)
        for row in rows:
            typer.echo(
                f"{row.id:>6}  {_iso(row.start_time)}  {row.end_s - row.start_s:6.1f}  "
                f"{row.peak_score:5.2f}  {row.source} / {row.label} / {row.clip or '-'}"
            )
