"""The report's costs come from clean runs: a configuration with a clean run shows its clean
wall time, one timed only beside other load is marked † with its CPU ms/image and a note, the
header counts the contended runs, the run index marks each, and the time figure draws the
contended-only configuration apart, off its Pareto front."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.report import figures, write_reports

# (run, depth, seed, timing tag or None, train_time_s, cpu_ms_per_image, val_accuracy)
RUNS = [
    ("mixed-clean", 2, 0, "clean", 10.0, 0.5, 0.60),
    ("mixed-busy", 2, 1, "contended", 50.0, 0.55, 0.62),
    ("only-busy", 3, 0, "contended", 80.0, 0.9, 0.70),
    ("untagged", 4, 0, None, 30.0, None, 0.65),
]


def _store(uri: str) -> dict[str, str]:
    """One trial run per RUNS row, as run_trial logs them (the costs that matter here)."""
    client = MlflowClient(uri)
    ids = {}
    for name, depth, seed, timing, train_s, cpu_ms, val in RUNS:
        cfg = TrialConfig(dataset="cifar10", depth=depth, epochs=2, seed=seed)
        run = client.create_run("0", run_name=f"{cfg.run_name}-s{seed}")
        metrics = {M.TRAIN_TIME: train_s, M.IMAGES_PER_S: 1000 / train_s, M.VAL_ACCURACY: val,
                   M.TEST_ACCURACY: val, M.PARAM_COUNT: 1000 * depth, M.FLOPS: 1e6 * depth,
                   M.OVERFIT_GAP: 0.0, M.BEST_VAL_ACCURACY: val, M.BEST_EPOCH: 2}  # fmt: skip
        if cpu_ms is not None:
            metrics |= {M.CPU_MS_PER_IMAGE: cpu_ms, M.CPU_TIME: 2.0, M.HOST_BUSY_OTHER: 0.01}
        tags = {M.TAG_BENCHMARK_ROLE: "trial", M.TAG_TRIAL_STATE: "complete"}
        tags |= {M.TAG_TIMING: timing} if timing else {}
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in cfg.to_params().items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


def _table_rows(section: str) -> list[dict[str, str]]:
    """Every row of every table in a section, each keyed by its own table's header."""
    rows, head, lines = [], None, section.splitlines()
    for prev, line in zip(["", *lines], lines, strict=False):
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if not prev.startswith("| "):
            head = cells
        elif not set(line) <= set("|-: "):
            rows.append(dict(zip(head, cells, strict=True)))
    return rows


def _leaderboard_rows(md: str) -> dict[str, dict[str, str]]:
    """Leaderboard rows (both tables) by run name, through the Configurations legend."""
    board = _table_rows(md.split("## Leaderboard", 1)[1].split("\n## ", 1)[0])
    legend = _table_rows(md.split("## Configurations", 1)[1].split("\n## ", 1)[0])
    names = {r["id"]: r["run name"].strip("`") for r in legend}
    return {names[r["id"]]: r for r in board if "id" in r}


def test_the_report_marks_contended_runs_and_takes_costs_from_clean_ones(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'costs.db'}"
    ids = _store(uri)
    drawn, real = [], figures.scatter

    def scatter(*args, **kw):
        drawn.append((args, kw))
        return real(*args, **kw)

    monkeypatch.setattr(figures, "scatter", scatter)
    md = write_reports("cifar10", tmp_path / "out", uri)[0].read_text()

    assert "- **Timing**: 2 of 4 completed runs trained beside other load (contended, " in md
    assert "1 clean, 1 logged before the load was measured" in md
    rows = _leaderboard_rows(md)
    mixed, busy, untagged = (rows[TrialConfig(depth=d).run_name] for d in (2, 3, 4))
    assert mixed["train time (s)"] == "10.0"  # the clean run's only, not the mean with 50
    assert mixed["CPU ms/image"] == "0.500"
    assert busy["train time (s)"] == "80.0 †" and busy["images/s"] == "12 †"
    assert busy["CPU ms/image"] == "0.900"
    assert untagged["train time (s)"] == "30.0" and untagged["CPU ms/image"] == "—"
    assert "† 1 configuration(s) timed only beside other load" in md

    runs = md.split("## Runs", 1)[1]
    assert f"`{ids['only-busy']}` †" in runs and f"`{ids['mixed-busy']}` †" in runs
    assert f"`{ids['mixed-clean']}` †" not in runs and f"`{ids['untagged']}` †" not in runs

    (args, kw) = next(d for d in drawn if d[0][3].name == "accuracy_vs_time.png")
    xs, labels = args[0], args[2]
    assert kw["marked_label"] and [labels[i] for i in kw["marked"]] == [busy["id"]]
    assert not set(kw["marked"]) & set(kw["front"])  # the contended-only point is no front
    assert sorted(xs) == [10.0, 30.0, 80.0]
    assert "timed only beside other load left out" in md.split("## Findings", 1)[1]
