"""`python -m benchmark retime`: re-measure the speed of the configurations in the store on a
quiet machine, so that a report whose trials trained beside other load gets costs that
compare across rows.

Why not trust the trials' own wall times: a search on a shared machine times its neighbours
as much as its models (one 17 Flowers configuration: 84 s in one trial, 1,116 s in another).
Each configuration of the dataset's leaderboard (the top N by validation accuracy with
--top) is trained for the dry run's two-epoch probe (benchmark.search.dryrun: no
augmentation, validation included), one at a time, and `probe_images_per_s` (training
images / the second epoch's seconds) and `probe_host_busy_other` (the share of the cores
other processes kept busy meanwhile) are logged onto every run of the configuration. The
report shows them as "quiet images/s".
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import psutil
import yaml
from mlflow.entities import Metric

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.report.load import P, load_runs, split_by_dataset
from benchmark.report.stats import summarize
from benchmark.search.dryrun import _probe
from benchmark.train.cost import host_busy_s, own_cpu_s, timing_tag
from benchmark.train.trial import DATA_FIELDS, load_for


def config_of(row: dict[str, Any]) -> TrialConfig:
    """The TrialConfig a run was logged with (params are strings; YAML reads their types)."""
    values = {}
    for name in TrialConfig.field_names():
        text = row.get(P(name))
        if isinstance(text, str) and text != "":
            value = yaml.safe_load(text)
            values[name] = None if value == "None" else value
    return TrialConfig(**values)


def busy_other(start: tuple[float, float, float]) -> float:
    """Share of the cores other processes kept busy since `start` (perf_counter, own CPU
    seconds, host busy seconds), as benchmark.train.cost measures it beside a fit."""
    wall, cpu, busy = (time.perf_counter() - start[0], own_cpu_s() - start[1],
                       host_busy_s() - start[2])  # fmt: skip
    return min(max((busy - cpu) / (wall * (psutil.cpu_count() or 1)), 0.0), 1.0)


def retime(dataset: str, top: int | None, data_dir: str | None, printer=print) -> int:
    """Probe the top configurations of `dataset` in the current store; how many were timed."""
    by_dataset = split_by_dataset(load_runs())
    if dataset not in by_dataset or by_dataset[dataset].main.empty:
        raise UserError(
            f"no completed trials of {dataset!r} in {mlflow.get_tracking_uri()}; nothing to re-time"
        )
    main = by_dataset[dataset].main
    board = summarize(main).head(top) if top else summarize(main)
    runs = main.set_index("run_id")
    client, cores, datasets = mlflow.MlflowClient(), psutil.cpu_count() or 1, {}
    printer(f"retime: {len(board)} configuration(s) of {dataset}, a two-epoch probe each")
    for r in board.to_dict("records"):
        cfg = config_of(runs.loc[r["run_ids"][0]].to_dict())
        key = tuple(getattr(cfg, f) for f in DATA_FIELDS)
        data = datasets.get(key) or datasets.setdefault(key, load_for(cfg, data_dir))
        cfg = cfg.replace(image_size=data.image_shape[0])
        start = (time.perf_counter(), own_cpu_s(), host_busy_s())
        probe = _probe(cfg, data, int(r[M.FLOPS]) if r[M.FLOPS] == r[M.FLOPS] else 0)
        other = busy_other(start)
        rate = len(data.x_train) / probe.epoch_s
        now = int(time.time() * 1000)
        logged = [Metric(M.PROBE_IMAGES_PER_S, rate, now, 0),
                  Metric(M.PROBE_HOST_BUSY_OTHER, other, now, 0)]  # fmt: skip
        for run_id in r["run_ids"]:
            client.log_batch(run_id, metrics=logged)
        note = "" if timing_tag(other, cores) == "clean" else " (contended: rerun when quiet)"
        printer(f"  {r['label']}: {rate:,.0f} images/s on {len(r['run_ids'])} run(s){note}")
    return len(board)
