"""One report per dataset: `build_report` puts a dataset's sections and figures together,
`write_reports` writes them (with the JSON summary and the README index).

May import benchmark.errors, benchmark.train.tracking (to tag the command's own `mlflow run` run)
and every benchmark.report module; nothing imports this one but the package's __init__.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import UserError
from benchmark.report.ablation import ablation_title, ablations, parts_paragraph
from benchmark.report.budget import budget_section, search_studies
from benchmark.report.figures import TOP_CURVES, draw_figures, prune_figures
from benchmark.report.findings import findings
from benchmark.report.header import header
from benchmark.report.ids import board_with_ids, dataset_ids, legend, with_ids
from benchmark.report.lab import lab_index, lab_section, lab_summary
from benchmark.report.load import DatasetRuns, load_runs, slug, split_by_dataset, tracking
from benchmark.report.markdown import (
    effect_table,
    failures,
    index,
    leaderboard,
    run_index,
)
from benchmark.report.matters import matters_by_study, reference_points
from benchmark.report.origin import best_by_hand, found_by, hand_note, marked
from benchmark.report.speed import fastest, time_to_accuracy_section
from benchmark.report.speed import summary as speed_summary
from benchmark.report.stats import augmentation_effects, best_row, summarize
from benchmark.report.summary import best_summary
from benchmark.report.text import readable
from benchmark.report.weakness import where_it_fails

PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
CAPTIONS = {
    "learning_curves.png": f"Learning curves of the top {TOP_CURVES} configurations "
    "(mean over seeds)",
    "accuracy_vs_params.png": "Validation accuracy vs parameters (Pareto front in red)",
    "accuracy_vs_time.png": "Validation accuracy vs training time (Pareto front in red)",
    "augmentation_effect.png": "Test accuracy with and without augmentation",
}


@dataclass
class Report:
    dataset: str
    markdown: str
    board: pd.DataFrame  # the leaderboard (for the index)
    files: list[Path]
    summary: dict | None = None  # the best configuration, for <dataset>.json
    time_to_accuracy: dict | None = None  # per threshold the fastest configuration, ditto


def build_report(runs: DatasetRuns, out: Path, command: str | None = None) -> Report:
    """The dataset's markdown and figures; figures are written (those of the folder it no
    longer shows deleted), markdown is returned. `command`: how the report was written, for
    its header (default: `python -m benchmark report --dataset <dataset>`)."""
    named_runs, named = runs, summarize(runs.main)  # by name: the lab, JSON and README
    ids = dataset_ids(runs, named)  # every table says C1, C2, ...; the legend names them
    runs, board = with_ids(runs, ids), board_with_ids(named, ids)
    effects = augmentation_effects(board)
    fig_dir = out / slug(runs.dataset)
    files = draw_figures(runs, board, effects, fig_dir)
    studies = search_studies(runs)

    parts = [
        f"# {runs.dataset}: CNN benchmark report",
        header(runs, command),
        "## Findings\n\n" + "\n\n".join(filter(None, (findings(board, effects),
                                                       parts_paragraph(runs)))),
        "## Leaderboard\n\n" + leaderboard(marked(board)) + hand_note(board) + legend(runs, ids),
        time_to_accuracy_section(board, quickest := fastest(board)),
        "## What matters\n\n" + matters_by_study(runs),
        *budget_section(studies),
        "## Augmentation effect\n\n" + effect_table(effects),
    ]
    best = best_summary(runs.main, best_row(named)) if len(board) else None
    if best is not None:  # the headline best: a search found it (stats.searched)
        best["found_by"] = found_by(studies, best["run_ids"])
    here = best and best | {"run_name": str(best_row(board)["label"])}  # its id
    parts.insert(4, "## Reference points\n\n" + reference_points(runs.dataset, runs.main, here))
    if lab := lab_section(named_runs, best):  # the lab's answers first, then the details
        parts.insert(1, lab)
    fails, fail_files = where_it_fails(best_row(board) if len(board) else None, fig_dir)
    parts.append("## Where it fails\n\n" + fails)
    if runs.ablation_ids:
        parts.append(ablation_title(runs) + "\n\n" + ablations(runs))
    rel = fig_dir.name
    shown = [f"![{CAPTIONS.get(f.name, f.stem.replace('_', ' '))}]({rel}/{f.name})" for f in files]
    parts.append("## Figures\n\n" + ("\n\n".join(shown) if shown else "No completed trials."))
    parts.append("## Pruned and failed trials\n\n" + failures(runs))
    parts.append("## Runs\n\n" + run_index(board))
    markdown = readable("\n\n".join(parts) + "\n")
    gone = set(prune_figures(fig_dir, markdown))  # figures of an earlier report of the folder
    kept = [f for f in files + fail_files if f not in gone]
    by_name = {  # the JSON names a configuration by its run name, not its id
        key: best and best | {"configuration": str(named.loc[best["row"], "label"])}
        for key, best in quickest.items()
    }
    return Report(runs.dataset, markdown, named, kept, best, speed_summary(by_name))


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar per artifact read on stderr; the report prints paths only."""
    old = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "false"
    try:
        yield
    finally:
        if old is None:
            del os.environ[PROGRESS_ENV]
        else:
            os.environ[PROGRESS_ENV] = old


def write_reports(
    dataset: str = "all",
    out: str | Path = "reports",
    tracking_uri: str | None = None,
    command: str | None = None,
    skipped: dict[str, str] | None = None,
) -> list[Path]:
    """Write `<out>/<dataset>.md` (figures in `<out>/<dataset>/`) and `<out>/README.md`.

    `command` is how the reports were asked for, named in each header (the CLI passes its
    own command line; default: `python -m benchmark report --dataset <dataset>`).

    `dataset="all"` reports every dataset found. The index always covers every dataset in
    the store, so reporting one dataset never drops the others from it. `skipped` (the lab
    command's): datasets not run, and why, said in the index. Returns the paths written:
    each report, its figures, then the index.
    """
    out = Path(out)
    with tracking(tracking_uri) as uri, _no_progress_bar():
        by_dataset = split_by_dataset(load_runs())
        if dataset != "all" and dataset not in by_dataset:
            raise UserError(
                f"no runs for dataset {dataset!r} in {uri}; run "
                f"`mlflow run . -P dataset={dataset}` first"
            )
        if not by_dataset:
            raise UserError(f"no runs in {uri}; run `mlflow run . -P dataset=flowers17` first")
        out.mkdir(parents=True, exist_ok=True)
        written, boards = [], {}
        labs = {name: lab_summary(runs) for name, runs in by_dataset.items()}
        for name, runs in by_dataset.items():
            if dataset not in ("all", name):
                boards[name] = summarize(runs.main)  # index only
                continue
            rep = build_report(runs, out, command)
            path = out / f"{slug(name)}.md"
            path.write_text(rep.markdown, encoding="utf-8")
            written += [path, *rep.files]
            if rep.summary is not None:
                summary = out / f"{slug(name)}.json"
                hand = best_by_hand(runs.main, rep.board)  # named apart, never the best
                doc = {"dataset": name, "best": rep.summary, "best_by_hand": hand,
                       "lab": labs[name], "time_to_accuracy": rep.time_to_accuracy}
                text = json.dumps(doc, indent=2, sort_keys=True)
                summary.write_text(text + "\n", encoding="utf-8")
                written.append(summary)
            boards[name] = rep.board
        readme = out / "README.md"
        skipped = {d: why for d, why in (skipped or {}).items() if d not in by_dataset}
        text = index(boards, lead=lab_index(labs, skipped), command=command)
        readme.write_text(readable(text), encoding="utf-8")
    return [*written, readme]
