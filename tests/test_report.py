"""Reports on a real MLflow store filled by a tiny real search (plus a failure and an
ablation): the tables hold MLflow's numbers, failures and missing metrics do not break
the report, the same runs give the same bytes, and an empty store gets a clear message."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics

import mlflow
import numpy as np
import pandas as pd
import pytest
from folders import shapes_tree
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from scipy import stats

import benchmark.train.trial
from benchmark import metrics as M
from benchmark.cli.commands import cmd_report
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.report import delta_ci, pareto_front, slug, write_reports
from benchmark.search import ablation_space, best_of_latest_search, run_search
from benchmark.search.space import load_space

SPACE = """\
strategy: grid
seeds: 2
fixed: {image_size: 16, epochs: 2, batch_size: 8, kernel_size: 3, dense_units: 8,
        filters_base: 4, filters_max: 8, padding: same, steps_per_execution: 4}
space:
  depth: {values: [1, 2]}
  augmentation: {values: [none, seed]}
"""
BOOM = "simulated failure: out of memory"
PARTIAL = "d1-k3-w16-aug=none"  # a copied run without test_accuracy


@pytest.fixture(scope="module")
def store(tmp_path_factory, session_cache):
    """Search (4 configurations x 2 seeds, one run failing), an ablation, one partial run."""
    tmp = tmp_path_factory.mktemp("report_store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    dataset = f"folder:{shapes_tree(tmp / 'shapes', per_class=12)}"
    real_build = benchmark.train.trial.build_model

    def build_model(cfg, *args, **kwargs):
        if cfg.depth == 2 and cfg.augmentation == "seed" and cfg.seed == 1:
            raise RuntimeError(BOOM)
        return real_build(cfg, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE_DIR", str(session_cache))
        mp.setenv("KERAS_HOME", str(tmp / "keras_home"))
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setattr(benchmark.train.trial, "build_model", build_model)
        mlflow.set_tracking_uri(uri)
        artifacts = (tmp / "artifacts").as_uri()  # not ./mlruns: the default beside sqlite
        mp.setenv("MLFLOW_EXPERIMENT_ID", MlflowClient(uri).create_experiment("t", artifacts))
        (tmp / "tiny.yaml").write_text(SPACE)
        quiet = {
            "storage": f"sqlite:///{tmp / 'optuna.db'}",
            "printer": lambda *a: None,
            "isolate": False,
        }  # in-process: the build_model patch must reach trials
        run_search(load_space(tmp / "tiny.yaml"), dataset=dataset, **quiet)
        _, fixed = best_of_latest_search(dataset)
        ablation = ablation_space(fixed, seeds=1, policies=["none", "seed"])
        run_search(ablation, dataset=dataset, role="ablation", **quiet)
        _log_partial_run(MlflowClient(uri), dataset)
    return uri, dataset


def _log_partial_run(client: MlflowClient, dataset: str) -> None:
    """A copy of a real trial run with dense_units 16 and no test_accuracy: a missing metric
    (the report labels a run by its config, so the copy differs in a setting its name shows)."""
    src = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "attributes.run_name = 'd1-k3-w8-aug=none-s0'",
    )[0]
    run = client.create_run(src.info.experiment_id, run_name=PARTIAL)
    params = src.data.params | {"dense_units": "16"}
    tags = {k: v for k, v in src.data.tags.items() if not k.startswith("mlflow.")}
    metrics = {k: v for k, v in src.data.metrics.items() if k != M.TEST_ACCURACY}
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(run.info.run_id)


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    uri, dataset = store
    out = tmp_path_factory.mktemp("reports")
    paths = write_reports("all", out, uri)
    return out, paths, (out / f"{slug(dataset)}.md").read_text()


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _rows(text: str, first: int = 0) -> list[dict[str, str]]:
    """The `first`-th markdown table of `text` as dicts keyed by its header."""
    tables, lines = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("| "):
            lines.append([c.strip() for c in line.strip("|").split(" | ")])
        elif lines:
            tables.append(lines)
            lines = []
    head, _, *body = tables[first]
    return [dict(zip(head, row, strict=True)) for row in body]


def _tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table of `text`, each as `_rows` reads it."""
    n = sum(1 for a, b in zip(["", *text.splitlines()], text.splitlines(), strict=False)
            if b.startswith("| ") and not a.startswith("| "))  # fmt: skip
    return [_rows(text, i) for i in range(n)]


def _names(md: str) -> dict[str, str]:
    """The legend (section Configurations): id -> run name."""
    return {r["id"]: r["run name"].strip("`") for r in _rows(_section(md, "Configurations"))}


def _board(md: str) -> list[dict[str, str]]:
    """Both leaderboard tables' rows, in order, each with its configuration's run name."""
    names = _names(md)
    rows = [r for t in _tables(_section(md, "Leaderboard")) for r in t]
    return [r | {"configuration": names[r["id"].removesuffix(" (by hand)")]} for r in rows]


def _expected(uri: str) -> dict[str, list]:
    """Completed search trials straight from MLflow: run name without seed -> runs."""
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = {r.info.run_id: r.data.tags.get("cnn_benchmark_role") for r in runs}
    out: dict[str, list] = {}
    for r in runs:
        t = r.data.tags
        if t.get(M.TAG_TRIAL_STATE) == "complete" or t.get("mlflow.runName") == PARTIAL:
            if parents.get(t.get("mlflow.parentRunId")) != "ablation":
                name = t["mlflow.runName"].removesuffix(f"-s{r.data.params['seed']}")
                out.setdefault(name, []).append(r)
    return out


def _best(board: list[dict[str, str]]) -> str:
    """The leaderboard's best as the report chooses it: its top row among the configurations
    run on the most seeds (up to 3); the one-seed partial copy may rank above it."""
    need = min(3, max(int(r["seeds"]) for r in board))
    return next(r["configuration"] for r in board if int(r["seeds"]) >= need)


def _val(row: dict[str, str]) -> float:
    return float(row["val acc (tested weights)"].split(" ")[0])


def _fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    text = f"{mean:.4f}" if len(values) == 1 else f"{mean:.4f} ± {statistics.stdev(values):.4f}"
    return text.replace("-", "−")  # the report writes a true minus sign


@pytest.mark.slow
def test_leaderboard_holds_mlflow_numbers_ranked_by_validation(store, report):
    uri, _ = store
    rows = _board(report[2])
    expected = _expected(uri)
    assert sorted(r["configuration"] for r in rows) == sorted(expected)
    for row in rows:
        runs = expected[row["configuration"]]
        assert row["seeds"] == str(len(runs))
        for column, metric in (("val acc (tested weights)", M.VAL_ACCURACY),
                               ("overfit gap", M.OVERFIT_GAP)):  # fmt: skip
            assert row[column] == _fmt([r.data.metrics[metric] for r in runs])
        assert row["params"] == f"{int(runs[0].data.metrics[M.PARAM_COUNT]):,}"
        tags = {r.data.tags[M.TAG_OVERFIT] for r in runs}
        assert row["overfit"] == (tags.pop() if len(tags) == 1 else "1/2 yes")
    for table in _tables(_section(report[2], "Leaderboard")):  # each ranked by validation
        names = _names(report[2])
        vals = [statistics.fmean(r.data.metrics[M.VAL_ACCURACY] for r in expected[names[row["id"]]])
                for row in table]  # fmt: skip
        assert vals == sorted(vals, reverse=True)  # never by test
    assert next(r for r in rows if r["configuration"] == "d2-k3-w8-aug=lab")["seeds"] == "1"


@pytest.mark.slow
def test_missing_metric_shows_a_dash(report):
    partial = next(r for r in _board(report[2]) if r["configuration"] == PARTIAL)
    assert partial["test acc"] == "—"
    assert partial["val acc (tested weights)"] != "—"


@pytest.mark.slow
def test_failed_run_listed_with_its_reason(store, report):
    uri, _ = store
    rows = _rows(_section(report[2], "Pruned and failed trials"))
    names = _names(report[2])
    assert [(r["state"], names[r["id"]], r["seed"]) for r in rows] == [
        ("failed", "d2-k3-w8-aug=lab", "1")
    ]
    assert BOOM in rows[0]["reason"]
    mlflow.set_tracking_uri(uri)
    failed = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string="attributes.status = 'FAILED'")  # fmt: skip
    assert rows[0]["run"] == f"`{failed[0].info.run_id}`"


@pytest.mark.slow
def test_augmentation_effect_and_ablation(store, report):
    uri, _ = store
    expected = _expected(uri)
    rows = {r["architecture"]: r for r in _rows(_section(report[2], "Augmentation effect"))}
    assert sorted(rows) == ["d1-k3-w8", "d2-k3-w8"]

    def test_acc(name):
        return [r.data.metrics[M.TEST_ACCURACY] for r in expected[name]]

    a, b = test_acc("d1-k3-w8-aug=none"), test_acc("d1-k3-w8-aug=lab")
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval()
    d = f"{np.mean(b) - np.mean(a):+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]".replace("-", "−")
    assert rows["d1-k3-w8"]["Δ test acc"] == d  # Welch's 95% CI, 2 seeds a side
    assert "[" not in rows["d2-k3-w8"]["Δ test acc"]  # one seed with augmentation: no CI

    ablation = _rows(_section(report[2], "Ablation"))
    assert sorted(r["augmentation"] for r in ablation) == ["lab", "none"]  # seed shows as lab
    assert all(r["seeds"] == "1" for r in ablation)


@pytest.mark.slow
def test_header_findings_and_index(store, report):
    uri, dataset = store
    out, paths, md = report
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="pandas")
    first = runs["start_time"].min().strftime("%Y-%m-%d %H:%M UTC")
    header = md.split("## Findings")[0]
    for fact in (dataset, "16 px", "Keras 3.", "TensorFlow 2.", first, "grid", "ablation"):
        assert fact in header
    board = _board(md)
    best = _best(board)
    best_id = next(r["id"] for r in board if r["configuration"] == best)
    assert f"`{best_id}` has the highest validation accuracy" in md
    top = max(board, key=_val)
    if _val(top) > _val(next(r for r in board if r["id"] == best_id)):  # a one-seed run
        assert f"run on fewer seeds: `{top['id']}`" in md
    for question in ("**Augmentation", "**Overfitting.**", "**Accuracy vs parameter count.**",
                     "**Accuracy vs training time.**"):  # fmt: skip
        assert question in md
    index = (out / "README.md").read_text()
    assert f"({slug(dataset)}.md)" in index and f"`{best}`" in index
    assert paths[-1] == out / "README.md"


@pytest.mark.slow
def test_same_runs_same_bytes_and_png_figures(store, report, tmp_path):
    uri, dataset = store
    out, paths, md = report
    again = write_reports(dataset, tmp_path / "again", uri)
    assert (tmp_path / "again" / f"{slug(dataset)}.md").read_text() == md
    figures = [p for p in paths if p.suffix == ".png"]
    names = {p.name for p in figures}
    assert {"learning_curves.png", "accuracy_vs_params.png", "accuracy_vs_time.png",
            "augmentation_effect.png", "augmentation_lab.png"} <= names  # fmt: skip
    for p in figures:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({p.parent.name}/{p.name})" in md  # embedded in the markdown
    twin = {p.name: p.read_bytes() for p in again}
    assert all(twin[p.name] == p.read_bytes() for p in figures)


@pytest.mark.slow
def test_empty_store_and_unknown_dataset_get_a_clear_message(store, tmp_path):
    uri, _ = store
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(UserError, match=r"no runs in .*empty\.db; run `mlflow run \."):
        write_reports("all", tmp_path / "out", empty)
    msg = f"no runs for dataset 'cifar10' in {uri}; run `mlflow run . -P dataset=cifar10` first"
    with pytest.raises(UserError) as err:
        write_reports("cifar10", tmp_path / "out", uri)
    assert str(err.value) == msg
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cmd_report_prints_the_paths(store, tmp_path, capsys):
    uri, dataset = store
    args = argparse.Namespace(dataset=dataset, out=str(tmp_path / "r"), tracking_uri=uri)
    assert cmd_report(args) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(tmp_path / "r" / f"{slug(dataset)}.md")
    assert printed[-1] == str(tmp_path / "r" / "README.md")


def test_statistics_helpers():
    assert pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.7, 0.7]) == [0, 2]
    a = {"x": 1.0, "x:std": 0.1, "x:n": 3}
    b = {"x": 1.5, "x:std": 0.2, "x:n": 4}
    d, lo, hi = delta_ci(a, b, "x")
    assert d == pytest.approx(0.5) and lo < 0.5 < hi
    assert np.isnan(delta_ci(a | {"x:n": 1}, b, "x")[1])


def test_a_one_seed_probe_does_not_displace_a_three_seed_best():
    """The best is chosen on validation among the configurations run on the most seeds
    (up to 3); a luckier single seed above it is named as a candidate."""
    from benchmark.report.findings import findings
    from benchmark.report.stats import best_row

    board = pd.DataFrame({
        "label": ["probe", "confirmed", "also-3", "two"], "n": [1, 3, 3, 2],
        M.VAL_ACCURACY: [0.79, 0.78, 0.77, 0.785], M.VAL_ACCURACY + ":std": [np.nan, .01, .01, .01],
        M.TEST_ACCURACY: [0.77, 0.78, 0.76, 0.7], M.TEST_ACCURACY + ":std": [np.nan, .01, .01, .01],
        M.PARAM_COUNT: [1, 2, 3, 4], M.TRAIN_TIME: [1.0, 2, 3, 4], M.TRAIN_TIME + ":std": 0.0,
        "overfit": "no", "aug": "none", "arch_label": ["a", "b", "c", "d"],
    }).assign(**{m + ":n": [1, 3, 3, 2] for m in (M.VAL_ACCURACY, M.TEST_ACCURACY, M.TRAIN_TIME)}
    ).sort_values(M.VAL_ACCURACY, ascending=False, ignore_index=True)  # fmt: skip
    assert best_row(board)["label"] == "confirmed"
    text = findings(board, [])
    assert "`confirmed` has the highest validation accuracy among those run on 3 seeds" in text
    assert "run on fewer seeds: `probe` (0.7900, 1 seed(s)), `two`" in text
    assert best_row(board[board["n"] < 3])["label"] == "two"  # two seeds: the most there are
    assert best_row(board[board["n"] == 1])["label"] == "probe"  # one-seed searches as before


def test_dataset_with_only_a_failed_run(tmp_path):
    """Nothing completed yet: the report still renders, with the failure and its reason."""
    uri = f"sqlite:///{tmp_path / 'one.db'}"
    client = MlflowClient(uri)
    run = client.create_run("0", run_name="d3-k3-w64-none")
    client.log_batch(
        run.info.run_id,
        params=[Param("dataset", "cifar10"), Param("seed", "0")],
        tags=[RunTag(M.TAG_TRIAL_STATE, "failed"), RunTag(M.TAG_STATUS_REASON, "nan loss")],
    )
    client.set_terminated(run.info.run_id, "FAILED")
    paths = write_reports("cifar10", tmp_path / "out", uri)
    md = paths[0].read_text()
    assert "No completed trials." in _section(md, "Leaderboard")
    assert _rows(_section(md, "Pruned and failed trials"))[0]["reason"] == "nan loss"
    assert [p.name for p in paths] == ["cifar10.md", "README.md"]
    assert "- **Git commit** (of the code the runs were launched from): unknown (launched " in md


def test_runs_logged_before_split_sizes_merge_with_later_reruns():
    """A rerun that also logs train/val/test_size is the same configuration, not a second."""
    import pandas as pd

    from benchmark.report import _annotate

    base = {"params.depth": "2", "params.augmentation": "seed", "params.seed": "0",
            "tags.mlflow.runName": "d2-k3-w64-seed", "status": "FINISHED"}  # fmt: skip
    sizes = {f"params.{k}": "100" for k in M.SPLIT_SIZE_PARAMS}
    trials = pd.DataFrame([{**base, "run_id": "old"}, {**base, **sizes, "run_id": "new"}])
    t = _annotate(trials, ablation_ids=set())
    # labelled as today's config names it, whatever name the run was logged under
    assert t["config"].nunique() == 1 and set(t["label"]) == {"d2-k3-w64-aug=lab"}


def test_runs_logged_before_a_field_existed_merge_with_reruns_that_log_its_default():
    import pandas as pd

    from benchmark.report import _annotate

    base = {"params.depth": "4", "params.augmentation": "shift_flip", "status": "FINISHED"}
    trials = pd.DataFrame([
        {**base, "run_id": "old", "params.seed": "0"},  # before pool_position existed
        {**base, "run_id": "new", "params.seed": "1", "params.pool_position": "end"},
        {**base, "run_id": "early", "params.seed": "0", "params.pool_position": "early"},
    ])  # fmt: skip
    t = _annotate(trials, ablation_ids=set()).set_index("run_id")
    assert t.loc["old", "config"] == t.loc["new", "config"] != t.loc["early", "config"]
    assert t.loc["early", "label"] == "d4-k3-w64-pe-aug=shift_flip"


def test_configurations_told_apart_by_width_name_the_settings_not_the_derived_filters():
    import pandas as pd

    from benchmark.report import _annotate

    trials = pd.DataFrame([
        {"run_id": f"r{base}", "status": "FINISHED", "params.seed": "0", "params.depth": "3",
         "params.filters_base": str(base), "params.filters_max": str(4 * base),
         "params.filters": f"{base}-{2 * base}-{4 * base}"}
        for base in (32, 48)
    ])  # fmt: skip
    t = _annotate(trials, ablation_ids=set()).set_index("run_id")
    assert t.loc["r48", "label"] == "d3-k3-w64-aug=none (filters_base=48, filters_max=192)"
    assert t["config"].nunique() == 2


def test_architecture_label_drops_the_policy_from_new_and_older_run_names():
    import pandas as pd

    from benchmark.report import _annotate

    rows = [("new", "lab-net-d3-k3-w64-aug=lab", "seed"), ("old", "seed-d3-k3-w64-seed", "seed"),
            ("none", "d2-k5-w64-aug=none", "none")]  # fmt: skip
    trials = pd.DataFrame([
        {"run_id": i, "status": "FINISHED", "params.seed": "0", "params.augmentation": aug,
         "params.depth": i, "tags.mlflow.runName": name}
        for i, name, aug in rows
    ])  # fmt: skip
    t = _annotate(trials, ablation_ids=set()).set_index("run_id")
    assert t.loc["new", "label"] == "lab-net-d3-k3-w64-aug=lab"
    assert list(t["arch_label"]) == ["lab-net-d3-k3-w64", "seed-d3-k3-w64", "d2-k5-w64"]


def test_only_trials_count_not_reports_or_failed_mlflow_run_runs(tmp_path):
    """`mlflow run` logs its -P parameters (dataset among them) on every run it makes: the
    report's own run and a run that failed before its search are no trials."""
    from benchmark.report import is_trial, load_runs, split_by_dataset

    uri = f"sqlite:///{tmp_path / 'roles.db'}"
    client = MlflowClient(uri)

    def run(name, params, tags, status="FINISHED"):
        r = client.create_run("0", run_name=name)
        client.log_batch(r.info.run_id, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])  # fmt: skip
        client.set_terminated(r.info.run_id, status)
        return r.info.run_id

    trial = run("d2-k3-w64-none", {"dataset": "cifar10", "seed": "0", "depth": "2"},
                {M.TAG_DIGEST: "abc", M.TAG_TRIAL_STATE: "complete"})  # fmt: skip
    client.log_batch(trial, metrics=[Metric(k, 0.5, 0, 0) for k in (M.VAL_ACCURACY,
                                                                    M.TEST_ACCURACY)])  # fmt: skip
    tagged = run("d3-k3-w64-none", {"dataset": "cifar10", "seed": "0", "depth": "3"},
                 {M.TAG_BENCHMARK_ROLE: "trial", M.TAG_ROLE: "trial"}, "RUNNING")  # fmt: skip
    run("report", {"dataset": "cifar10", "out": "reports"}, {M.TAG_BENCHMARK_ROLE: "report"})
    run(
        "gentle-fox-1",
        {"dataset": "cifar10", "data_dir": "/nowhere"},
        {"mlflow.project.entryPoint": "main", M.TAG_STATUS_REASON: "no data"},
        "FAILED",
    )
    run("kind-owl-2", {"dataset": "flowers17"}, {M.TAG_BENCHMARK_ROLE: "wrapper"}, "FAILED")
    mlflow.set_tracking_uri(uri)
    df = load_runs()
    assert set(df.loc[is_trial(df), "run_id"]) == {trial, tagged}
    by = split_by_dataset(df)
    assert list(by) == ["cifar10"] and set(by["cifar10"].trials["run_id"]) == {trial, tagged}
    md = write_reports("cifar10", tmp_path / "out", uri)[0].read_text()
    assert "- **Trial runs**: 2 (1 complete, 1 running)" in md


@pytest.mark.slow
def test_what_matters_reference_points_and_json_summary(store, report):
    uri, dataset = store
    out, paths, md = report
    matters = _section(md, "What matters")
    # the grid searched depth and augmentation: both ranked, each value's mean val accuracy
    assert "| `depth` |" in matters and "| `augmentation` |" in matters
    assert "fANOVA" in matters and "read these as hints" in matters  # 8 runs: flagged as few
    rows = [r for r in _rows(matters.split("Mean validation accuracy", 1)[1])]
    assert {(r["setting"], r["value"]) for r in rows} >= {
        ("`depth`", "1"),
        ("`depth`", "2"),
        ("`augmentation`", "none"),
        ("`augmentation`", "seed"),
    }
    refs = _section(md, "Reference points")
    assert "Best configuration here" in refs and "this suite" in refs

    summary_path = out / f"{slug(dataset)}.json"
    assert summary_path in paths
    best = json.loads(summary_path.read_text())["best"]
    assert best["run_name"] == _best(_board(md))  # chosen on validation, among the most seeds
    per_seed = best["test_accuracy"]["per_seed"]  # JSON keys: the seeds as strings
    assert set(per_seed) <= {str(s) for s in best["seeds"]} and best["seeds"]
    if per_seed:  # the partial copy run logged no test accuracy: then null, never NaN
        assert best["test_accuracy"]["mean"] == pytest.approx(np.mean(list(per_seed.values())))
    else:
        assert best["test_accuracy"]["mean"] is None
    assert set(best["config"]) == set(TrialConfig.field_names()) - {"seed"}
    # the command reproduces one seed: it parses into the same configuration
    from benchmark.cli import build_parser, config_from_args

    argv = best["command"].removeprefix("python -m benchmark ").split()
    cfg = config_from_args(build_parser().parse_args(argv))
    assert {k: v for k, v in cfg.to_params().items() if k != "seed"} == {
        k: ("None" if v is None else v) for k, v in best["config"].items()
    }
    assert cfg.seed == min(best["seeds"])


def test_runs_logged_under_older_names_read_as_todays():
    """Labels come from the logged settings: a lab-net run logged as `seed-d3-k3-w64-seed`
    (the naming before `lab-net` / `aug=lab`) shows under today's name; a run whose params
    are no config keeps its logged name."""
    import pandas as pd

    from benchmark.config import TrialConfig
    from benchmark.report import _annotate

    cfg = TrialConfig.from_options(model="seed", augmentation="seed")
    lab = {f"params.{k}": str(v) for k, v in cfg.to_params().items()}
    trials = pd.DataFrame([
        {**lab, "run_id": "a", "status": "FINISHED", "tags.mlflow.runName": "seed-d3-k3-w64-seed"},
        {"run_id": "b", "status": "FINISHED", "params.seed": "0", "params.depth": "deep",
         "tags.mlflow.runName": "someone-elses-run"},
    ])  # fmt: skip
    t = _annotate(trials, ablation_ids=set()).set_index("run_id")
    assert t.loc["a", "label"] == "lab-net-d3-k3-w64-aug=lab"
    assert t.loc["b", "label"] == "someone-elses-run"


# --- reports a person can read (issue 29, item 3) -----------------------------------------

LONG_LR = "0.021518226328569492"  # as a search logs a learning rate
CLASSES = str(["airplane", "automobile", "bird"])
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def fake_store(tmp_path_factory, empty_store) -> str:
    """Completed trial runs logged by hand: a configuration on 2 seeds (40 epochs), a halving
    rung's 4-epoch training of its namesake scoring higher on 1 seed, and a one-seed
    configuration logged outside a git checkout; every run logs the class names."""
    path = tmp_path_factory.mktemp("fake_store") / "mlflow.db"
    shutil.copyfile(empty_store, path)
    uri = f"sqlite:///{path}"
    client = MlflowClient(uri)

    def trial(depth, lr, epochs, seed, val, tags):
        params = {"dataset": "cifar10", "depth": depth, "learning_rate": lr, "epochs": epochs,
                  "seed": str(seed), "class_names": CLASSES}  # fmt: skip
        run = client.create_run("0", run_name=f"d{depth}-k3-w64-aug=none-s{seed}")
        metrics = {M.VAL_ACCURACY: val, M.TEST_ACCURACY: val - 0.01,
                   M.PARAM_COUNT: 1000 * int(depth), M.TRAIN_TIME: 10.0 * int(epochs)}  # fmt: skip
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in {M.TAG_TRIAL_STATE: "complete", **tags}.items()],
        )
        client.set_terminated(run.info.run_id)

    trial("3", LONG_LR, "40", 0, 0.80, {M.TAG_GIT: COMMIT})
    trial("3", LONG_LR, "40", 1, 0.82, {M.TAG_GIT: COMMIT})
    trial("3", "0.0897261286643251", "4", 0, 0.85, {M.TAG_GIT: COMMIT, M.TAG_RUNG: "0"})
    trial("2", "0.01", "40", 0, 0.70, {M.TAG_GIT: "unknown"})
    return uri


def test_tables_name_configurations_by_short_ids_with_one_legend(fake_store, tmp_path):
    """C1, C2, ... in leaderboard order in every table; the legend gives each id's run name
    and only the settings that differ; the public `config_ids` gives the same ids."""
    from benchmark.report import config_ids, load_runs, split_by_dataset, summarize

    uri = fake_store
    md = write_reports("cifar10", tmp_path / "out", uri)[0].read_text()
    legend = _rows(_section(md, "Configurations"))
    assert [(r["id"], r["run name"], r["epochs"], r["learning_rate"]) for r in legend] == [
        ("C1", "`d3-k3-w64-aug=none`", "40", "0.02152"),
        ("C2", "`d3-k3-w64-aug=none`", "4", "0.08973"),
        ("C3", "`d2-k3-w64-aug=none`", "40", "0.01"),
    ]
    assert "depth" not in legend[0] and "batch_size" not in legend[0]  # named, or shared
    for title in ("Leaderboard", "Findings", "Runs", "Reference points"):
        assert "aug=" not in _section(md, title)  # ids, never the long names
    assert "`C1` has the highest validation accuracy" in md
    mlflow.set_tracking_uri(uri)
    board = summarize(split_by_dataset(load_runs())["cifar10"].main)
    ids = config_ids(board)
    by_name = dict(zip(board["label"], board["config"], strict=True))
    assert ids[by_name["d3-k3-w64-aug=none (epochs=40, learning_rate=0.02152)"]] == "C1"
    assert ids[by_name["d3-k3-w64-aug=none (epochs=4, learning_rate=0.08973)"]] == "C2"


def test_leaderboard_splits_full_length_seeds_from_rungs_and_one_seed_trials(fake_store, tmp_path):
    uri = fake_store
    md = write_reports("cifar10", tmp_path / "out", uri)[0].read_text()
    board = _section(md, "Leaderboard")
    assert "### Full length, on several seeds" in board
    confirmed, rest = _tables(board)
    assert [(r["id"], r["seeds"]) for r in confirmed] == [("C1", "2")]
    # the rung scored higher on its one seed: ranked first among the rest, not above C1
    assert [(r["id"], r["epochs"]) for r in rest] == [("C2", "4"), ("C3", "40")]


def test_floats_short_class_names_out_command_and_commit_in_the_header(fake_store, tmp_path):
    uri = fake_store
    out = tmp_path / "out"
    paths = write_reports("cifar10", out, uri)
    md, index = paths[0].read_text(), paths[-1].read_text()
    assert LONG_LR not in md + index and "0.0897261286643251" not in md + index
    header = md.split("## Findings")[0]
    assert "airplane" not in header and "class_names" not in header
    assert "- **Command**: `python -m benchmark report --dataset cifar10`" in header
    assert f"`{COMMIT[:12]}`" in header and COMMIT[:13] not in header
    assert "unknown (launched outside a git checkout) for 1 run(s)" in header
    args = argparse.Namespace(dataset="cifar10", out=str(out), tracking_uri=uri)
    assert cmd_report(args) == 0  # the CLI names its own command line
    assert f"`python -m benchmark report --dataset cifar10 --out {out}`" in paths[0].read_text()


def test_no_prose_line_over_400_characters():
    """A long paragraph becomes one sentence a line; a long sentence is wrapped outside its
    code spans; tables and list items stay what they are."""
    from benchmark.report.text import readable

    name = "`d4-k5-w0-c2-gap-aug=randaugment (block_dropout=0.1, epochs=40)`"
    prose = " ".join(f"Sentence {i} names {name} once." for i in range(12))
    item = "- **Settings**: " + ", ".join(f"setting_{i}=0.1" for i in range(60))
    row = "| " + " | ".join(["0.7913 ± 0.0055"] * 30) + " |"
    lines = readable("\n\n".join([prose, item, row]) + "\n").splitlines()
    assert max(len(line) for line in lines if not line.startswith("|")) <= 400
    assert row in lines and sum(name in line for line in lines) == 12  # never split
    start = next(i for i, line in enumerate(lines) if line.startswith("- **Settings**"))
    rest = lines[start + 1 : lines.index(row) - 1]  # the item's other lines, then a blank
    assert len(rest) > 3 and all(line.startswith("  setting_") for line in rest)
    assert " ".join(lines).split() == "\n\n".join([prose, item, row]).split()  # same words


def test_report_deletes_the_figures_it_no_longer_shows(fake_store, tmp_path):
    uri = fake_store
    out = tmp_path / "out"
    (out / "cifar10").mkdir(parents=True)
    old = out / "cifar10" / "augmentation_gone_policy.png"
    old.write_bytes(b"\x89PNG\r\n\x1a\n")
    paths = write_reports("cifar10", out, uri)
    md = paths[0].read_text()
    assert not old.exists() and old not in paths
    kept = sorted((out / "cifar10").glob("*.png"))
    assert kept and all(f"](cifar10/{p.name})" in md for p in kept)


@pytest.mark.slow
def test_real_report_reads_by_ids_in_short_lines(store, report):
    """The tiny search's report: ids in every table (the effect and ablation tables too),
    each named by the legend; no prose line over 400 characters, no row over 250."""
    uri, dataset = store
    out, paths, md = report
    names = _names(md)
    assert list(names) == [f"C{i}" for i in range(1, len(names) + 1)]
    assert [r["id"] for r in _board(md)] == list(names)[: len(_board(md))]
    assert set(_expected(uri)) <= set(names.values())
    for title in ("Leaderboard", "Augmentation effect", "Ablation", "Pruned and failed", "Runs"):
        assert "aug=" not in _section(md, title)
    effect = _rows(_section(md, "Augmentation effect"))
    assert all(a in names and b in names
               for a, b in (r["configurations"].split(" → ") for r in effect))  # fmt: skip
    for text in (md, (out / "README.md").read_text()):
        lines = text.splitlines()
        assert max(len(x) for x in lines if not x.startswith("|")) <= 400
        assert max(len(x) for x in lines) <= 250
    assert not {p.name for p in (out / slug(dataset)).glob("*.png")} - {
        p.name for p in paths
    }  # every figure of the folder is the report's


def test_importances_print_no_optuna_study_line(caplog):
    """fANOVA needs an in-memory Optuna study: the report writes no "A new study created in
    memory" line per study to the terminal (the lab printed one per dataset)."""
    import logging

    import optuna
    import pandas as pd

    from benchmark.report.matters import importances

    done = pd.DataFrame({
        "params.depth": ["2", "3"] * 6, "params.augmentation": ["none"] * 6 + ["lab"] * 6,
        "metrics.val_accuracy": [0.5 + 0.01 * i for i in range(12)],
    })  # fmt: skip
    optuna.logging.enable_propagation()  # Optuna's own handler writes where pytest cannot see
    try:
        with caplog.at_level(logging.INFO, logger="optuna"):
            found = importances(done, ["depth", "augmentation"])
    finally:
        optuna.logging.disable_propagation()
    assert set(found) == {"depth", "augmentation"} and sum(found.values()) == pytest.approx(1)
    assert not [r for r in caplog.records if "A new study created" in r.getMessage()]


def test_findings_measure_test_time_augmentation_pairwise():
    """Each configuration scored its own weights with and without TTA: the finding is the
    mean paired change, its interval, how many it helped, and the best one's two scores."""
    from benchmark.report.findings import findings

    board = pd.DataFrame({
        "label": ["a", "b", "c"], "n": 3, M.VAL_ACCURACY: [0.8, 0.7, 0.6],
        M.TEST_ACCURACY: [0.80, 0.70, 0.60], M.TEST_ACCURACY_TTA: [0.82, 0.71, 0.59],
        M.PARAM_COUNT: [1, 2, 3], M.TRAIN_TIME: [1.0, 2, 3], "overfit": "no", "aug": "none",
        "arch_label": ["a", "b", "c"],
    })  # fmt: skip
    scored = (M.VAL_ACCURACY, M.TEST_ACCURACY, M.TEST_ACCURACY_TTA, M.TRAIN_TIME)
    board = board.assign(**{m + ":std": 0.01 for m in scored}, **{m + ":n": 3 for m in scored})
    text = findings(board, [])
    line = next(p for p in text.split("\n\n") if p.startswith("**Test-time augmentation.**"))
    assert "On the 3 configuration(s) that scored it, it changed test accuracy by +0.0067" in line
    assert "95% CI [" in line and "raised it on 2 of 3" in line
    assert "the best configuration's 0.8000 ± 0.0100 becomes 0.8200 ± 0.0100" in line
    untested = findings(board.assign(**{M.TEST_ACCURACY_TTA: np.nan}), [])
    assert "Test-time augmentation" not in untested
