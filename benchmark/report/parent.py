"""What a search's parent run shows besides numbers: the study's leaderboard as its
description, and the dataset's report and figures as its artifacts (`report/`).

The report stage owns these because they are built from the report's tables; the CLI hands
`ParentDescription` to the search, which never imports the report itself.
May import: benchmark.metrics, benchmark.train.tracking and the report package.
"""

from __future__ import annotations

import logging
import tempfile
from typing import TYPE_CHECKING

import mlflow

from benchmark import metrics as M
from benchmark.report.load import P, load_study_runs
from benchmark.report.markdown import table
from benchmark.report.stats import mean_std, num, summarize
from benchmark.train import tracking

if TYPE_CHECKING:
    from benchmark.search.space import SearchSpace
    from benchmark.search.summary import SearchSummary

log = logging.getLogger("benchmark.report")

NOTE_ROWS = 10  # configurations in a parent's description; the report artifact has them all


NOTE_LIMIT = 7500  # characters: MLflow keeps at most 8000 in a tag


def leaderboard_note(summary: SearchSummary, parents: list, parent_id: str,
                      space: SearchSpace | None) -> str:  # fmt: skip
    """The study's leaderboard as markdown, for the parent's description in the UI."""
    c = summary.counts
    links = [
        tracking.run_link(p.info.experiment_id, p.info.run_id, f"#{i}")
        + (" (latest)" if p.info.run_id == parent_id else "")
        for i, p in enumerate(parents, 1)
    ]
    lines = [
        f"**Study `{summary.study_name}`**: {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['failed']} failed trials"
        + (f", {c['interrupted']} interrupted" if c.get("interrupted") else "")
        + f". Parent runs of the study: {', '.join(links)}.",
        "",
    ]
    runs = load_study_runs(summary.study_name)
    board = summarize(runs.main)
    if board.empty:
        return "\n".join([*lines, "No completed trials yet."])
    experiment = dict(zip(runs.trials["run_id"], runs.trials["experiment_id"], strict=True))
    params = runs.trials.set_index("run_id")
    dims = [d.name for d in space.dimensions] if space is not None else []
    dims = [d for d in dims if P(d) in params.columns]
    heads = " | ".join(["#", "configuration", *dims, "val acc", "test acc", "params",
                        "overfit gap", "overfit", "seeds"])  # fmt: skip
    rows = []
    for i, r in enumerate(board.to_dict("records"), 1):
        first = r["run_ids"][0]
        row = [
            str(i), tracking.run_link(experiment[first], first, r["label"]),
            *(str(params.at[first, P(d)]) for d in dims),
            mean_std(r, M.VAL_ACCURACY), mean_std(r, M.TEST_ACCURACY),
            num(r[M.PARAM_COUNT], 0), mean_std(r, M.OVERFIT_GAP), r["overfit"], str(r["n"]),
        ]  # fmt: skip
        if i > NOTE_ROWS or len(table(heads, [*rows, row])) > NOTE_LIMIT - 600:
            break
        rows.append(row)
    right = range(2 + len(dims), 6 + len(dims))
    lines += [
        table(heads, rows, right=right),
        "",
        f"Top {len(rows)} of {len(board)} configurations, ranked by validation accuracy "
        "(mean ± std over seeds); test accuracy is shown, never used to rank. The full "
        "report with figures is in this run's artifacts under `report/`.",
    ]
    return "\n".join(lines)[:NOTE_LIMIT]


def attach_report(dataset: str, run_id: str) -> None:
    """The dataset's report and figures as the parent's artifacts (`report/`). A search that
    trained for hours is not failed by its report: a problem here is one warning line."""
    from benchmark.report.build import write_reports

    with tempfile.TemporaryDirectory() as tmp:
        try:
            write_reports(dataset, tmp)
            mlflow.MlflowClient().log_artifacts(run_id, tmp, "report")
        except Exception as exc:  # whatever failed, the search's results stand
            log.warning("report not attached to run %s: %s", run_id, str(exc)[:200])


class ParentDescription:
    """The search's `describe`: the leaderboard note on every parent, the report on the
    latest (benchmark.search.summary.Describer)."""

    note = staticmethod(leaderboard_note)
    attach = staticmethod(attach_report)
