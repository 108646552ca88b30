"""``edge-asc listen``: the sensor, from a config file and options, to its outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from edge_asc.cli.common import (
    BackendOption,
    FeaturesOption,
    FusionOption,
    ModelOption,
    QuietOption,
    ThreadsOption,
    ThresholdOption,
    TrustedKeysOption,
    UserError,
    app,
    check_fusion,
    check_numbers,
    decision_options,
    kinds_option,
    open_bundle,
    user_errors,
)
from edge_asc.cli.history import history_outputs, history_settings


@app.command()
def listen(
    config: Annotated[
        Path | None, typer.Option(help="TOML config file (options given here override it).")
    ] = None,
    model: ModelOption = None,
    features: FeaturesOption = None,
    device: Annotated[
        str | None,
        typer.Option(help="Input device: index or (part of a) name; see `edge-asc devices`."),
    ] = None,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="Audio file, or a stream FFmpeg reads (rtsp://, http://, ...); repeat for "
            "several sources.",
        ),
    ] = None,
    window: Annotated[
        float | None, typer.Option(help="Seconds of patches the scene label averages.", min=0.1)
    ] = None,
    fusion: FusionOption = None,
    quiet_dbfs: QuietOption = None,
    threshold: ThresholdOption = None,
    max_not_heard: Annotated[
        float | None,
        typer.Option(
            help="An event ends after its label was not heard this many seconds.", min=0.0
        ),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON line per update and per event.")
    ] = False,
    mqtt: Annotated[
        str | None, typer.Option(help="Publish to mqtt[s]://[USER:PASS@]HOST[:PORT].")
    ] = None,
    sensor_id: Annotated[
        str | None, typer.Option(help="This sensor's MQTT topic level and Home Assistant id.")
    ] = None,
    mqtt_ca: Annotated[str | None, typer.Option(help="CA certificate file for mqtts://.")] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Serve Prometheus metrics at [HOST:]PORT/metrics.")
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="With a file --input: replay at real speed.")
    ] = False,
    events: Annotated[
        Path | None, typer.Option(help="Keep the event history (and clips) in this SQLite file.")
    ] = None,
    no_clips_for: Annotated[
        str | None, typer.Option(help="Comma-separated labels whose audio is never stored.")
    ] = None,
    web: Annotated[
        str | None, typer.Option(help="Serve the dashboard at [HOST:]PORT (127.0.0.1 default).")
    ] = None,
    web_token: Annotated[
        str | None, typer.Option(help="Token the dashboard asks for (needed beyond localhost).")
    ] = None,
    threads: ThreadsOption = None,
    backend: BackendOption = "auto",
    trusted_keys: TrustedKeysOption = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of audio.", min=0.0)
    ] = None,
) -> None:
    """Label the scene live from a microphone or streams (or files replayed the same way)."""
    from edge_asc.config import ListenSettings, MqttOptions, SourceSettings, load_config
    from edge_asc.sensor import Sensor
    from edge_asc.signals import Terminated

    sensor = mqtt_sink = None
    try:
        with user_errors():
            settings = load_config(config) if config is not None else ListenSettings()
            given = {
                "model": str(model) if model else None,
                "features": kinds_option(features),
                "fusion": fusion,
                "threads": threads,
                "window": window,
                "quiet_dbfs": quiet_dbfs,
                "max_not_heard": max_not_heard,
                "duration": duration,
                "metrics": metrics,
            }
            settings = dataclasses.replace(
                settings, **{k: v for k, v in given.items() if v is not None}
            )
            if backend != "auto":
                settings = dataclasses.replace(settings, backend=backend)
            if jsonl or realtime:
                settings = dataclasses.replace(
                    settings, jsonl=settings.jsonl or jsonl, realtime=settings.realtime or realtime
                )
            if input_ and device is not None:
                raise UserError("--device and --input cannot be used together")
            if input_:
                settings = dataclasses.replace(
                    settings, sources=tuple(SourceSettings(input=item) for item in input_)
                )
            elif device is not None:
                settings = dataclasses.replace(settings, sources=(SourceSettings(device=device),))
            if settings.realtime and not any(s.input for s in settings.sources):
                raise UserError("--realtime only applies to --input")
            if mqtt is not None or sensor_id is not None or mqtt_ca is not None:
                base = settings.mqtt or MqttOptions(url=mqtt or "")
                overrides = {"url": mqtt, "sensor_id": sensor_id, "ca_file": mqtt_ca}
                base = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v})
                if not base.url:
                    raise UserError("--sensor-id and --mqtt-ca need --mqtt (or [mqtt] url)")
                settings = dataclasses.replace(settings, mqtt=base)
            settings = history_settings(settings, events, no_clips_for, web, web_token)
            check_fusion(settings.fusion)
            check_numbers(settings.threads, settings.window, settings.duration)
            bundle = open_bundle(
                Path(settings.model) if settings.model else None, settings.features
            )
            decision = decision_options(
                bundle, settings.quiet_dbfs, threshold, settings.threshold, settings.thresholds
            )
            sinks, mqtt_sink = _sinks(bundle, settings, len(settings.sources or [None]))
            sensor = Sensor(bundle, settings, decision, mqtt_sink.paused if mqtt_sink else None)
            _open_outputs(sinks, sensor, bundle, mqtt_sink, settings)
            first = sensor.sources[0]
            start = f"{first.name} at {first.input_rate:g} Hz"
            if len(sensor.sources) > 1:
                start = f"{len(sensor.sources)} sources ({', '.join(sensor.source_names)})"
            typer.echo(
                f"edge-asc: listening to {start}; models on {sensor.listeners[0].engine.backend}; "
                "Ctrl-C stops",
                err=True,
            )
            try:
                sensor.run(sinks)
            finally:
                for sink in reversed(sinks):
                    sink.close()
    except (KeyboardInterrupt, Terminated):
        pass  # Ctrl-C, `kill` or `systemctl stop`: how listening normally ends (exit 0)
    if sensor is not None:
        mqtt_note = ""
        if mqtt_sink is not None:
            mqtt_note = f", MQTT {mqtt_sink.published} sent, {mqtt_sink.unsent} unsent"
        for line in sensor.summaries():
            typer.echo(line + mqtt_note, err=True)


def _sinks(bundle, settings, n_sources: int):
    """The outputs asked for; the live view only for one source without JSON lines."""
    from edge_asc.sinks import JsonLinesSink
    from edge_asc.sinks.mqtt import MqttSettings, MqttSink

    sinks = []
    mqtt_sink = None
    if settings.mqtt is not None:
        options = settings.mqtt
        mqtt_settings = MqttSettings.from_url(
            options.url,
            prefix=options.prefix,
            sensor_id=options.sensor_id,
            discovery_prefix=options.discovery_prefix,
            state_interval_s=options.state_interval,
            ca_file=options.ca_file,
        )
        mqtt_sink = MqttSink(mqtt_settings, list(bundle.labels), [], bundle.path.stem)
        sinks.append(mqtt_sink)
    if settings.jsonl:
        sinks.append(JsonLinesSink())
    return sinks, mqtt_sink


def _open_outputs(sinks, sensor, bundle, mqtt_sink, settings) -> None:
    """Complete and open the outputs once the sources are known (names, queues)."""
    from edge_asc.config import parse_address
    from edge_asc.sinks import LiveViewSink
    from edge_asc.sinks.metrics import MetricsSink

    if mqtt_sink is not None:
        mqtt_sink.sources = sensor.source_names
    if settings.metrics is not None:
        host, port = parse_address(settings.metrics, "--metrics")
        sinks.append(
            MetricsSink(
                host,
                port,
                bundle.path.stem,
                sensor.listeners[0].engine.backend,
                mqtt=mqtt_sink,
                queue_depth=sensor.queue_depths,
            )
        )
    sinks.extend(history_outputs(settings, sensor, bundle))
    if not settings.jsonl and len(sensor.sources) == 1 and mqtt_sink is None:
        first = sensor.sources[0]
        sinks.append(LiveViewSink(first.name, sensor.listeners[0].engine.first_patch_seconds))
    opened = []
    try:
        for sink in sinks:
            sink.open()
            opened.append(sink)
    except BaseException:
        for sink in reversed(opened):
            sink.close()
        raise
