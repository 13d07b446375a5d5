"""A trial that fails in its own process (the default) leaves its whole traceback, from that
process, under the search parent's `failures/`; and the trial process prints no TF start-up."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.search import run_search
from benchmark.search.space import load_space
from benchmark.train.isolate import ChildTraceback, TrialJob, TrialPool, run_isolated
from benchmark.train.trial import TrialFailed

# val_fraction is a data setting: the search checks the base point's data (0.1) before any
# trial, each trial process loads its own point's; 0.99 leaves no image to train on.
SPACE = """\
strategy: grid
fixed: {epochs: 1, batch_size: 4, depth: 1, filters_base: 4, dense_units: 0}
space:
  val_fraction: {values: [0.99, 0.5]}
"""


def _folder(root: Path) -> Path:
    """train/ and test/ with 3 images per class: val is carved from train by val_fraction."""
    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        for c in ("a", "b"):
            (root / part / c).mkdir(parents=True)
            for i in range(3):
                img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / part / c / f"{i}.png")
    return root


def test_a_trial_trains_in_its_own_process(tmp_path):
    """The default path, cheaply (the quick set's check): one tiny trial in one child process,
    logged under its parent run as a search logs it."""
    cfg = TrialConfig.from_options(
        dataset=f"folder:{_folder(tmp_path / 'imgs')}", val_fraction=0.5, epochs=1,
        batch_size=4, depth=1, filters_base=4, dense_units=0,
    )  # fmt: skip
    with mlflow.start_run() as parent:
        job = TrialJob(cfg=cfg, data_dir=None, tracking_uri=mlflow.get_tracking_uri(),
                       parent_run_id=parent.info.run_id, run_name=cfg.run_name,
                       tags={M.TAG_ROLE: "trial"})  # fmt: skip
        result = run_isolated(job)  # no spare process warmed up for a next trial
    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == cfg.run_name
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert M.TEST_ACCURACY in run.data.metrics
    assert run.data.metrics[M.STARTUP_TIME] > 0  # only a trial process has a start-up time


@pytest.mark.slow  # two trial processes
def test_a_failed_trial_process_leaves_its_traceback_under_failures(tmp_path, capfd):
    (tmp_path / "space.yaml").write_text(SPACE)
    lines: list[str] = []
    summary = run_search(
        load_space(tmp_path / "space.yaml"), dataset=f"folder:{_folder(tmp_path / 'imgs')}",
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lines.append, isolate=True,
    )  # fmt: skip
    assert summary.counts["failed"] == 1 and summary.counts["complete"] == 1
    assert any("failed: " in line and "too few" in line for line in lines), lines

    parent = next(
        r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.data.tags.get(M.TAG_ROLE) == "search"
    )  # fmt: skip
    client = mlflow.MlflowClient()
    names = [Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "failures")]
    assert len(names) == 1 and names[0].startswith("trial_")  # the failed one (grid order)
    text = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/failures/{names[0]}")
    # the child's frames, from the loader down to where it raised...
    assert "in the trial process:" in text and "isolate.py" in text
    child = text.split("in the trial process:", 1)[1]
    assert "Traceback (most recent call last)" in child
    assert "stratified_split" in child and "split.py" in child
    assert "benchmark.errors.UserError" in child and "too few" in child
    # ...then the search's side, ending in the one-line reason
    assert text.rstrip().splitlines()[-1].startswith("benchmark.train.trial.TrialFailed: ")

    err = capfd.readouterr().err  # the trial process wrote to this stderr too
    assert "cuInit" not in err and "absl::InitializeLog" not in err and "I0000" not in err


def test_child_traceback_is_the_cause_of_the_failure():
    import traceback

    child = 'Traceback (most recent call last):\n  File "x.py"\nValueError'
    with pytest.raises(TrialFailed) as caught:
        raise TrialFailed("boom") from ChildTraceback(child)
    # what the search logs under failures/: the child's frames, then the one-line reason
    text = "".join(traceback.format_exception(caught.value))
    assert text.index('File "x.py"') < text.index("direct cause") < text.index("TrialFailed: boom")
    assert "in the trial process:" in text


def test_a_process_that_ran_a_short_trial_serves_the_next_one(tmp_path):
    """A search's short trials: the process that ran one takes the next, warm (the issue's
    8.9 s overhead a 3-s trial was TensorFlow starting in the next process behind it)."""
    cfg = TrialConfig.from_options(
        dataset=f"folder:{_folder(tmp_path / 'imgs')}", val_fraction=0.5, epochs=1,
        batch_size=4, depth=1, filters_base=4, dense_units=0,
    )  # fmt: skip
    with TrialPool() as pool:  # a search's: the driver makes it and closes it at the end
        with mlflow.start_run() as parent:
            pids = []
            for seed in (0, 1):
                job = TrialJob(cfg=cfg.replace(seed=seed), data_dir=None,
                               tracking_uri=mlflow.get_tracking_uri(),
                               parent_run_id=parent.info.run_id, run_name=cfg.run_name,
                               tags={M.TAG_ROLE: "trial"})  # fmt: skip
                result = run_isolated(job, pool, prestart_next=True)
                assert mlflow.get_run(result.run_id).info.status == "FINISHED"
                pids.append(pool.spares[0].process.pid)  # first in line for the next
        assert pids[0] == pids[1]  # the same process ran both trials...
        assert len(pool.spares) == 2  # ...and the one warmed for a next trial still waits
        assert pool.peak_trial_rss_mb > 100  # it reported its peak (a TF process)
    assert not pool.spares
