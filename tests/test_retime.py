"""`python -m benchmark retime` re-measures the store's configurations with the dry run's
two-epoch probe and logs probe_images_per_s onto their runs; the report then shows them."""

from __future__ import annotations

import mlflow

from benchmark import metrics as M
from benchmark.cli import main
from benchmark.config import TrialConfig
from benchmark.report import write_reports
from benchmark.train.trial import run_trial


def test_retime_logs_a_quiet_probe_onto_every_run_of_a_configuration(shared_data, tmp_path, capsys):
    cfg = TrialConfig.from_options(dataset="cifar10", model="seed", augmentation="none", epochs=1,
                                   max_train_samples=200, steps_per_execution=4)  # fmt: skip
    ids = [run_trial(cfg.replace(seed=s), data_dir=str(shared_data), verbose=0).run_id
           for s in (0, 1)]  # fmt: skip
    assert main(["retime", "--dataset", "cifar10", "--data-dir", str(shared_data),
                 "--top", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "lab-net-d3-k3-w64-aug=none" in out and "images/s on 2 run(s)" in out
    for run_id in ids:
        m = mlflow.get_run(run_id).data.metrics
        assert m[M.PROBE_IMAGES_PER_S] > 0 and 0 <= m[M.PROBE_HOST_BUSY_OTHER] <= 1
    md = write_reports("cifar10", tmp_path / "out")[0].read_text()
    assert "quiet images/s" in md.split("## Leaderboard", 1)[1]


def test_retime_without_runs_is_one_line(capsys):
    assert main(["retime", "--dataset", "flowers17"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # MLflow may say it made the store
    assert last.startswith("error: no completed trials of 'flowers17' in ")
