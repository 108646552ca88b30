"""The runtime commands: label files, listen live, list microphones, measure the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edge_asc.audio import AudioError, load_audio
from edge_asc.cli.common import (
    BackendOption,
    FeaturesOption,
    FusionOption,
    MaxNotHeardOption,
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
from edge_asc.files import atomic_output
from edge_asc.text import text_table


@app.command()
def classify(
    paths: Annotated[
        list[str], typer.Argument(help="Audio files, folders (searched recursively) or globs.")
    ],
    model: ModelOption = None,
    features: FeaturesOption = None,
    fusion: FusionOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json (one object per line) or csv.")
    ] = "table",
    timeline: Annotated[
        bool, typer.Option(help="Also give a label per window, with start and end times.")
    ] = False,
    window: Annotated[
        float, typer.Option(help="Seconds of patches each timeline label averages.", min=0.1)
    ] = 3.0,
    events: Annotated[
        bool, typer.Option("--events", help="Also give each file's events (start, end, scores).")
    ] = False,
    quiet_dbfs: QuietOption = None,
    threshold: ThresholdOption = None,
    max_not_heard: MaxNotHeardOption = 5.0,
    threads: ThreadsOption = None,
    backend: BackendOption = "auto",
    trusted_keys: TrustedKeysOption = None,
) -> None:
    """Label audio files with the scene they were recorded in (or unknown, or quiet)."""
    import json

    from edge_asc.classify import classify_file, expand_inputs
    from edge_asc.engine import StreamingClassifier

    with user_errors():
        if output_format not in ("table", "json", "csv"):
            raise UserError(f"unknown --format {output_format!r}; choose table, json or csv")
        check_fusion(fusion)
        check_numbers(threads=threads, window=window)
        bundle = open_bundle(model, kinds_option(features), trusted_keys)
        kinds = tuple(bundle.models)
        decision = decision_options(bundle, quiet_dbfs, threshold)
        engine = StreamingClassifier(bundle, kinds, threads=threads, backend=backend)
    failed = 0
    header_done = False
    for argument, path in expand_inputs(paths):
        if path is None:
            typer.echo(f"edge-asc: skipped {argument}: no such audio file", err=True)
            failed += 1
            continue
        try:
            result = classify_file(
                path,
                bundle,
                kinds,
                fusion,
                window_s=window,
                engine=engine,
                decision=decision,
                max_not_heard_s=max_not_heard,
            )
        except AudioError as exc:
            typer.echo(f"edge-asc: skipped {' '.join(str(exc).split())}", err=True)
            failed += 1
            continue
        if output_format == "json":
            typer.echo(json.dumps(result.to_dict(timeline=timeline, events=events)))
        elif output_format == "csv":
            if not header_done:
                columns = ["start_s", "end_s"] if timeline else list(bundle.labels)
                typer.echo(",".join(["path", "decision", "label", "score", *columns]))
                header_done = True
            if timeline:
                for w in result.timeline:
                    row = [result.path, w["decision"], w["label"], w["score"]]
                    typer.echo(",".join(_csv_cell(v) for v in [*row, w["start_s"], w["end_s"]]))
            else:
                row = [result.path, result.decision, result.label, result.scores[result.label]]
                row += [result.scores[label] for label in bundle.labels]
                typer.echo(",".join(_csv_cell(v) for v in row))
        else:
            top = sorted(result.scores.items(), key=lambda kv: -kv[1])[:3]
            if result.decision == result.label:
                shown, rest = f"{result.label} {result.scores[result.label]:.2f}", top[1:]
            else:
                shown, rest = result.decision, top
            others = "  ".join(f"{name} {score:.2f}" for name, score in rest)
            typer.echo(f"{result.path}  {shown}  ({others})")
            if timeline:
                for w in result.timeline:
                    span = f"{w['start_s']:8.2f} - {w['end_s']:8.2f} s"
                    typer.echo(f"    {span}  {w['decision']} ({w['label']} {w['score']:.2f})")
            if events:
                for e in result.events:
                    span = f"{e['start_s']:8.2f} - {e['end_s']:8.2f} s"
                    typer.echo(
                        f"    event {span}  {e['label']} peak {e['peak_score']:.2f} "
                        f"mean {e['mean_score']:.2f}"
                    )
    if failed:
        raise typer.Exit(1)


def _csv_cell(value: object) -> str:
    text = str(value)
    if any(c in text for c in ',"\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


@app.command()
def devices() -> None:
    """List the input devices (microphones) PortAudio sees; * marks the default."""
    from edge_asc.sources import list_input_devices

    with user_errors():
        found = list_input_devices()
    if not found:
        typer.echo("no input devices found")
        return
    rows = [["", "index", "name", "host API", "inputs", "default rate"]]
    for d in found:
        rate = f"{d.default_samplerate:g} Hz"
        mark = "*" if d.is_default else ""
        rows.append([mark, str(d.index), d.name, d.hostapi, str(d.channels), rate])
    for line in text_table(rows[0], rows[1:]):
        typer.echo(line)


@app.command()
def bench(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Real audio to replay (default: the example clips)."),
    ] = None,
    model: ModelOption = None,
    features: FeaturesOption = None,
    seconds: Annotated[
        float | None, typer.Option(help="Audio to process (the input is looped).", min=1.0)
    ] = None,
    threads: ThreadsOption = None,
    backend: BackendOption = "auto",
    trusted_keys: TrustedKeysOption = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
) -> None:
    """Measure the whole pipeline here: MACs, real-time factor, latency, memory."""
    import json

    from edge_asc.bench import format_report, run_bench

    with user_errors():
        check_numbers(threads=threads, duration=seconds, duration_option="--seconds")
        bundle = open_bundle(model, kinds_option(features), trusted_keys)
        rate = next(iter(bundle.models.values())).features.sample_rate
        if not inputs:
            examples = Path(__file__).resolve().parents[1] / "examples"
            inputs = sorted(examples.glob("*.flac"))
            if not inputs:
                raise UserError("no audio given and no example clips found; pass audio files")
        audio = np.concatenate([load_audio(p, rate) for p in inputs])
        report = run_bench(
            bundle, audio, seconds=seconds, threads=threads, progress=True, backend=backend
        )
        typer.echo(format_report(report))
        if json_out is not None:
            with atomic_output(json_out) as tmp:
                tmp.write_text(json.dumps(report, indent=2) + "\n")
            typer.echo(f"wrote {json_out}")
