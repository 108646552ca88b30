"""Open-set benchmark: accuracy, ``unknown`` and ``quiet`` of the shipped recipe, held out.

Run by hand (``make open-set-table`` trains the four runs first)::

    python benchmarks/bench_open_set.py manifest --out runs/open-set/manifest.csv
    python benchmarks/bench_open_set.py table --runs runs/open-set --out open_set.json
    python benchmarks/bench_open_set.py runtime [--bundle B]

``manifest`` writes the training data: ESC-10 folds 1-4 as the ten classes, and as the class
``unknown`` the non-target recordings (``nontarget/``, and the sources of ``blanket_ambient/``
that are none of the ten classes), every source in one fold. ``table`` reads the
leave-one-fold-out runs ``fold-1`` ... ``fold-4`` (run k never trained on fold k's clips nor
on fold k's non-target sources) and prints:

* clip accuracy per fold and mean, per spectrogram and fused (closed set: the best of the ten);
* for every fusion rule and evidence (:data:`edge_asc.decision.EVIDENCE`: the best class's
  fused score, or its score against the class ``unknown``'s), the held-out and pooled shares;
  the pair with the best held-out balanced share is shipped unless ``--fusion`` or
  ``--evidence`` says otherwise;
* with the threshold applied to fold k fitted on the other folds' held-out scores only: the
  share of in-domain clips labelled correctly, and of non-target clips labelled ``unknown``
  (ambient sources and ``nontarget/`` separately);
* an ROC-style table of both against the threshold, pooled over the folds;
* with ``--runtime`` (the shipped model) or ``--bundle B``, and alone as ``runtime`` (no fold
  runs needed), through the runtime: digital silence and -60 dBFS noise floors, which must be
  ``quiet``, and the ten classes' own sounds in the ambient recordings (rain, waves,
  fireplace; never trained on).

It writes the threshold fitted on all four folds' held-out scores (training data only: the
shipped model is trained on all of them), with its fusion rule and evidence, as JSON for
``edge-asc export --open-set``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_asc.decision import EVIDENCE, UNKNOWN
from edge_asc.errors import EdgeAscError
from edge_asc.fusion import fuse
from edge_asc.text import text_table
from edge_asc.train.open_set import NonTarget, Rates, fit_threshold, rates, write_manifest

FUSION = "max"
RULES = ("max", "mean", "prod")
AMBIENT = "blanket_ambient"
AMBIENT_TARGETS = {"rain": "rain", "waves": "sea_waves", "fireplace": "crackling_fire"}
"""Ambient sources that are the ten classes' own sounds (never trained on): label -> class."""
_FIT = (
    "fitted for the best mean of in-domain-correct and non-target-unknown shares on "
    "leave-one-fold-out held-out clips of the training data"
)
METHOD = {
    "top": "background class 'unknown' trained on non-target recordings, plus a threshold on "
    "the fused ({rule}) score of the best class, " + _FIT,
    "vs_unknown": "background class 'unknown' trained on non-target recordings, plus a "
    "threshold on the best class's fused ({rule}) score against the background class's, "
    "s / (s + s_unknown), " + _FIT,
}
ROC_GRID = {
    "top": np.round(np.arange(0.0, 0.95, 0.1), 2),
    "vs_unknown": np.array([0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995]),
}
"""Thresholds of the ROC-style table, per evidence (``vs_unknown`` sits near 1)."""


def cmd_manifest(args: argparse.Namespace) -> None:
    data = Path(args.data)
    ambient = data / AMBIENT / "manifest.csv"
    import csv

    with open(ambient, newline="", encoding="utf-8") as f:
        sources = {row["label"] for row in csv.DictReader(f)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no runs/ yet
    counts = write_manifest(
        data / "esc10" / "manifest.csv",
        [
            NonTarget(data / "nontarget" / "manifest.csv"),
            NonTarget(ambient, group_by="label", keep=frozenset(sources - set(AMBIENT_TARGETS))),
        ],
        out,
    )
    print(f"wrote {out}: non-target clips per fold {counts}")


class Fold:
    """One leave-one-fold-out run's held-out clips and their scores."""

    def __init__(self, run: Path) -> None:
        spec = json.loads((run / "run.json").read_text())
        self.labels: list[str] = spec["labels"]
        self.kinds: list[str] = spec["kinds"]
        self.fold: int = spec["fold"]
        clips = json.loads((run / "validation.json").read_text())
        self.truth = [c["label"] for c in clips]
        self.ambient = np.array([AMBIENT in c["path"] for c in clips])
        stored = np.load(run / "posteriors.npz")
        self.per_kind = {k: stored[k] for k in self.kinds}
        self.use(FUSION)

    def use(self, rule: str) -> None:
        """Fuse the spectrograms' clip scores with ``rule`` from now on."""
        self.fused: np.ndarray = fuse(list(self.per_kind.values()), rule)

    def closed_set_accuracy(self, scores: np.ndarray) -> float:
        """Best of the target classes, on the in-domain clips."""
        target = [i for i, name in enumerate(self.labels) if name != UNKNOWN]
        inside = [i for i, t in enumerate(self.truth) if t != UNKNOWN]
        best = np.asarray(target)[np.argmax(scores[np.ix_(inside, target)], axis=1)]
        return float(
            np.mean([self.labels[b] == self.truth[i] for b, i in zip(best, inside, strict=True)])
        )

    def subset(self, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return self.fused[keep], [t for t, k in zip(self.truth, keep, strict=True) if k]


def _pooled(folds: list[Fold], keep=None) -> tuple[np.ndarray, list[str]]:
    fused, truth = [], []
    for f in folds:
        mask = np.ones(len(f.truth), bool) if keep is None else keep(f)
        x, t = f.subset(mask)
        fused.append(x)
        truth += t
    return np.concatenate(fused), truth


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(text_table(header, rows))


def _pct(x: float) -> str:
    return "-" if np.isnan(x) else f"{100 * x:.1f}"


def _runtime(bundle_path: Path | None):
    """The bundle (the shipped one by default) and its decision, as ``classify`` makes them."""
    from edge_asc.bundle import load_bundle
    from edge_asc.cli import default_model
    from edge_asc.cli.common import decision_options

    bundle = load_bundle(bundle_path or default_model())
    return bundle, decision_options(bundle, None, None)


def _ambient_check(bundle_path: Path | None, data: Path) -> list[list[str]]:
    """The ten classes' own sounds in the ambient recordings, through the runtime."""
    import csv

    from edge_asc.classify import classify_file

    bundle, decision = _runtime(bundle_path)
    with open(data / AMBIENT / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] in AMBIENT_TARGETS]
    out = []
    for source, label in AMBIENT_TARGETS.items():
        said = [
            classify_file(data / AMBIENT / r["filename"], bundle, decision=decision).decision
            for r in rows
            if r["label"] == source
        ]
        out.append(
            [
                f"{source} ({label})",
                str(len(said)),
                _pct(np.mean([s == label for s in said])),
                _pct(np.mean([s == UNKNOWN for s in said])),
            ]
        )
    return out


def _quiet_check(bundle_path: Path | None) -> list[list[str]]:
    import soundfile as sf

    from edge_asc.classify import classify_file
    from edge_asc.decision import QUIET

    bundle, decision = _runtime(bundle_path)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "digital silence": np.zeros(10 * 22050),
            "-60 dBFS white noise": rng.normal(0, 10 ** (-60 / 20), 10 * 22050),
            "-60 dBFS brown noise": np.cumsum(rng.normal(size=10 * 22050)),
        }
        brown = cases["-60 dBFS brown noise"]
        brown -= brown.mean()
        cases["-60 dBFS brown noise"] = brown / np.sqrt(np.mean(brown**2)) * 10 ** (-60 / 20)
        for name, audio in cases.items():
            path = Path(tmp) / "case.wav"
            sf.write(path, audio.astype(np.float32), 22050, subtype="FLOAT")
            result = classify_file(path, bundle, decision=decision)
            said = [row["decision"] for row in result.timeline]
            share = np.mean([s == QUIET for s in said]) if said else float("nan")
            rows.append([name, str(len(said)), _pct(share)])
    return rows


def cmd_runtime(args: argparse.Namespace) -> None:
    """The checks through the runtime, on a bundle alone (no fold runs needed)."""
    quiet = _quiet_check(args.bundle)  # loads the bundle first: a bad one prints nothing
    print("\nQuiet gate through the runtime (default -50 dBFS), 10 s each")
    print(_table(["input", "updates", "quiet %"], quiet))
    ambient = _ambient_check(args.bundle, Path(args.data))
    print("\nThe shipped classes' own sounds in the ambient recordings (never trained on)")
    print(_table(["source (class)", "clips", "correct %", "unknown %"], ambient))


def cmd_table(args: argparse.Namespace) -> None:
    runs = Path(args.runs)
    done = [
        runs / f"fold-{k}"
        for k in (1, 2, 3, 4)
        if (runs / f"fold-{k}" / "posteriors.npz").is_file()
    ]
    folds = [Fold(run) for run in done]
    if not folds:
        sys.exit(f"bench_open_set: no fold-k runs in {runs}")
    kinds = folds[0].kinds
    labels = folds[0].labels
    if len(folds) < 4:
        print(f"(only folds {[f.fold for f in folds]} found: partial figures)\n")

    print("Leave-one-fold-out clip accuracy on ESC-10 (%), closed set (best of the ten)")
    rows = []
    for f in folds:
        cells = [_pct(f.closed_set_accuracy(f.per_kind[k])) for k in kinds]
        fused = [_pct(f.closed_set_accuracy(fuse(list(f.per_kind.values()), r))) for r in RULES]
        rows.append([str(f.fold), *cells, *fused])
    means = [np.mean([float(r[i]) for r in rows]) for i in range(1, len(rows[0]))]
    rows.append(["mean", *[f"{m:.1f}" for m in means]])
    print(_table(["fold", *kinds, *(f"fused {r}" for r in RULES)], rows))

    print(
        "\nFusion rule and evidence for the open set: threshold fitted on the other folds "
        "(held out) and on all folds' held-out clips (pooled), %"
    )
    evidences = [e for e in EVIDENCE if e == "top" or UNKNOWN in labels]
    choice = []
    for rule in RULES:
        for f in folds:
            f.use(rule)
        for evidence in evidences:
            fitted = [_held_out(f, folds, labels, evidence)[1] for f in folds]
            held_out = np.nanmean(
                [(r.in_domain_correct, r.non_target_unknown) for r in fitted], axis=0
            )
            fit = fit_threshold(*_pooled(folds), labels, evidence)
            choice.append((float(np.mean(held_out)), rule, evidence, held_out, fit))
    print(
        _table(
            [
                "fusion",
                "evidence",
                "held-out in-domain correct",
                "held-out non-target unknown",
                "held-out balanced",
                "pooled threshold",
                "pooled in-domain",
                "pooled non-target",
            ],
            [
                [
                    r,
                    e,
                    _pct(h[0]),
                    _pct(h[1]),
                    _pct(b),
                    f"{x.threshold:.3f}",
                    _pct(x.in_domain_correct),
                    _pct(x.non_target_unknown),
                ]
                for b, r, e, h, x in choice
            ],
        )
    )
    best = max(choice, key=lambda c: c[0])
    rule = args.fusion if args.fusion != "auto" else best[1]
    evidence = args.evidence if args.evidence != "auto" else best[2]
    for f in folds:
        f.use(rule)
    print(f"shipped: fusion {rule}, evidence {evidence}")

    print("\nOpen set, threshold for fold k fitted on the other folds' held-out clips (%)")
    rows = []
    for f in folds:
        threshold, here, amb, own = _held_out(f, folds, labels, evidence)
        rows.append(
            [
                str(f.fold),
                f"{threshold:.3f}",
                _pct(here.in_domain_correct),
                _pct(amb.non_target_unknown),
                _pct(own.non_target_unknown),
                _pct(here.non_target_unknown),
            ]
        )
    cols = np.array([[float(c) if c != "-" else np.nan for c in r[2:]] for r in rows])
    rows.append(["mean", "", *[_pct(v / 100) for v in np.nanmean(cols, axis=0)]])
    print(
        _table(
            [
                "fold",
                "threshold",
                "in-domain correct",
                "ambient non-target unknown",
                "nontarget/ unknown",
                "all non-target unknown",
            ],
            rows,
        )
    )

    shipped = fit_threshold(*_pooled(folds), labels, evidence)
    print("\nROC-style, pooled over the folds' held-out clips (%)")
    steps = ROC_GRID[evidence]
    grid = sorted({*steps, shipped.threshold})
    table = []
    for t in grid:
        r_all = rates(*_pooled(folds), labels, t, evidence)
        r_amb = rates(*_pooled(folds, lambda f: f.ambient), labels, t, evidence)
        r_own = rates(
            *_pooled(folds, lambda f: ~f.ambient & np.array([x == UNKNOWN for x in f.truth])),
            labels,
            t,
            evidence,
        )
        mark = " (shipped)" if t == shipped.threshold else ""
        table.append(
            [
                f"{t:.3f}{mark}",
                _pct(r_all.in_domain_correct),
                _pct(r_amb.non_target_unknown),
                _pct(r_own.non_target_unknown),
            ]
        )
    print(
        _table(
            ["threshold", "in-domain correct", "ambient non-target unknown", "nontarget/ unknown"],
            table,
        )
    )

    if args.bundle is not None or args.runtime:
        cmd_runtime(args)

    if args.out:
        _write_open_set(Path(args.out), shipped, folds, rule, evidence)


def _held_out(
    f: Fold, folds: list[Fold], labels: list[str], evidence: str
) -> tuple[float, Rates, Rates, Rates]:
    """Fold ``f``'s threshold fitted on the other folds' held-out clips, and its rates there:
    all clips, the ambient non-target sources (with the in-domain clips), ``nontarget/``."""
    others = [g for g in folds if g is not f] or [f]  # one fold only: not held out
    fitted = fit_threshold(*_pooled(others), labels, evidence)
    here = rates(f.fused, f.truth, labels, fitted.threshold, evidence)
    inside = np.array([t != UNKNOWN for t in f.truth])
    amb = rates(*f.subset(f.ambient | inside), labels, fitted.threshold, evidence)
    own = rates(*f.subset(~f.ambient), labels, fitted.threshold, evidence)
    return fitted.threshold, here, amb, own


def _write_open_set(out: Path, shipped: Rates, folds: list[Fold], rule: str, evidence: str) -> None:
    data = {
        "threshold": shipped.threshold,
        "per_label": {},
        "evidence": evidence,
        "method": METHOD[evidence].format(rule=rule),
        "fitted": {
            "folds": [f.fold for f in folds],
            "held_out_clips": int(sum(len(f.truth) for f in folds)),
            "in_domain_correct": round(shipped.in_domain_correct, 4),
            "non_target_unknown": round(shipped.non_target_unknown, 4),
            "fusion": rule,
        },
    }
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {out}: threshold {shipped.threshold:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifest", help="write the open-set training manifest")
    m.add_argument("--data", default="../shared/data")
    m.add_argument("--out", required=True)
    t = sub.add_parser("table", help="print the tables from the fold-k runs")
    t.add_argument("--runs", default="runs/open-set")
    t.add_argument("--out", help="write the threshold fitted on every fold (JSON)")
    t.add_argument("--bundle", type=Path, help="bundle for the runtime checks (else shipped)")
    t.add_argument("--runtime", action="store_true", help="runtime checks on the shipped model")
    t.add_argument("--data", default="../shared/data")
    t.add_argument(
        "--fusion", default="auto", help="max, mean, prod, or auto (best held-out balanced share)"
    )
    t.add_argument(
        "--evidence", default="auto", help="top, vs_unknown, or auto (best held-out balanced share)"
    )
    r = sub.add_parser("runtime", help="only the checks through the runtime, on a bundle")
    r.add_argument("--bundle", type=Path, help="the bundle to check (else the shipped one)")
    r.add_argument("--data", default="../shared/data")
    args = parser.parse_args()
    commands = {"manifest": cmd_manifest, "table": cmd_table, "runtime": cmd_runtime}
    try:
        commands[args.command](args)
    except EdgeAscError as exc:  # a missing bundle or data folder: one line, as the CLI says it
        sys.exit(f"bench_open_set: {exc}")


if __name__ == "__main__":
    main()
