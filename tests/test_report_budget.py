"""The report's "How the search spent its budget" and where the best came from, on a real
MLflow store: two configurations trained by hand with `train` (better than anything the
search can find: the search's learning rate is too small to learn), then a tiny real
halving search (warm-started from the store), then a TPE + median-pruner study of the same
space file. The section must list the rungs and the confirmation as MLflow holds them, the
JSON's best must be the halving winner (`found_by`), and the hand-trained configuration
must be marked in the leaderboard and named apart (`best_by_hand`), never the best."""

from __future__ import annotations

import json
import statistics

import mlflow
import pandas as pd
import pytest
from folders import shapes_tree
from mlflow import MlflowClient

from benchmark import metrics as M
from benchmark.report import _annotate, slug, write_reports
from benchmark.report.budget import points
from benchmark.report.stats import best_row, summarize, unconfirmed_above

SPACE = """\
strategy: grid
seeds: 2
fixed: {image_size: 16, epochs: 4, batch_size: 8, kernel_size: 3, dense_units: 8,
        filters_base: 4, filters_max: 8, padding: same, steps_per_execution: 4,
        optimizer: sgd, learning_rate: 0.0001}
space:
  depth: {values: [1, 2]}
  augmentation: {values: [none, seed]}
optuna: {sampler: tpe, n_trials: 3}
halving: {eta: 2, min_epochs: 2, confirm_top: 2, budget_minutes: 10}
"""
HAND = ["--image-size", "16", "--epochs", "15", "--batch-size", "8", "--kernel-size", "3",
        "--dense-units", "8", "--filters-base", "4", "--filters-max", "8", "--padding", "same",
        "--depth", "2", "--augmentation", "none", "--optimizer", "adam",
        "--learning-rate", "0.01", "--label-smoothing", "0.1", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory, session_cache):
    """Hand-trained runs (2 seeds), a halving study, a TPE study of the same space file."""
    from benchmark.cli import main
    from benchmark.search import run_search
    from benchmark.search.space import load_space

    tmp = tmp_path_factory.mktemp("budget_store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    dataset = f"folder:{shapes_tree(tmp / 'shapes', per_class=30)}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("BENCHMARK_CACHE_DIR", str(session_cache))
        mp.setenv("KERAS_HOME", str(tmp / "keras_home"))
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("BENCHMARK_IN_PROCESS", "1")
        mlflow.set_tracking_uri(uri)
        artifacts = (tmp / "artifacts").as_uri()
        mp.setenv("MLFLOW_EXPERIMENT_ID", MlflowClient(uri).create_experiment("t", artifacts))
        for seed in ("0", "1"):
            assert main(["train", "--dataset", dataset, *HAND, "--seed", seed]) == 0
        path = tmp / "tiny-auto.yaml"
        path.write_text(SPACE)
        quiet = {"storage": f"sqlite:///{tmp / 'optuna.db'}", "printer": lambda *a: None,
                 "isolate": False}  # fmt: skip
        run_search(load_space(path, strategy="halving"), dataset=dataset, **quiet)
        # epochs 3: the same points at 4 epochs and seed 0 would be reruns of halving's runs
        run_search(load_space(path, strategy="optuna"), dataset=dataset, seeds=1,
                   overrides={"epochs": 3}, **quiet)  # fmt: skip
    return uri, dataset, str(path)


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    uri, dataset, _ = store
    out = tmp_path_factory.mktemp("reports")
    write_reports(dataset, out, uri)
    md = (out / f"{slug(dataset)}.md").read_text()
    return md, json.loads((out / f"{slug(dataset)}.json").read_text())


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


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


def _names(md: str) -> dict[str, str]:
    """The report's legend of configuration ids: id -> run name."""
    return {r["id"]: r["run name"].strip("`") for r in _rows(_section(md, "Configurations"))}


def _halving(uri: str) -> tuple[str, list]:
    """The halving parent's run id and its completed trial runs."""
    runs = _runs(uri)
    parent = next(r for r in runs if r.data.tags.get("strategy") == "halving")
    pid = parent.info.run_id
    return pid, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == pid
                 and r.data.tags.get(M.TAG_TRIAL_STATE) == "complete"]  # fmt: skip


@pytest.mark.slow
def test_the_section_lists_each_rung_and_the_confirmation(store, report):
    uri, _, space = store
    md, _ = report
    section = _section(md, "How the search spent its budget")
    assert "### Study `" in section and f"space `{space}`" in section
    _, trials = _halving(uri)
    explore = [r for r in trials if r.data.tags[M.TAG_STAGE] == "explore"]
    rungs = _rows(section)
    assert [(r["rung"], r["epochs"]) for r in rungs] == [("0", "2"), ("1", "4"), ("confirm", "4"),
                                                         ("all", "—")]  # fmt: skip
    for row, rung in zip(rungs[:2], ("0", "1"), strict=True):
        here = [r for r in explore if r.data.tags[M.TAG_RUNG] == rung]
        assert row["candidates"].split()[0] == str(len(here))  # one seed each in a rung
        assert row["trainings"] == str(len(here))
        wall = sum(r.data.metrics[M.TRIAL_WALL_TIME] for r in here) / 60
        assert row["wall time (min)"] == f"{wall:.1f}"
    assert rungs[0]["candidates"].startswith("4") and rungs[0]["survivors"] == "2"
    assert rungs[1]["candidates"].startswith("2") and rungs[1]["survivors"] == "2"  # confirmed

    finalists = _rows(section, 1)
    assert len(finalists) == 2 and "(winner)" in finalists[0]["finalist"]
    names = _names(md)
    for row in finalists:
        name = names[row["finalist"].split("`")[1]]  # the id's run name, less its rung
        mine = [r for r in trials if r.data.params["epochs"] == "4"
                and r.data.tags["mlflow.runName"].startswith(f"{name}-e4")]  # fmt: skip
        assert row["seeds"] == "0, 1" and len(mine) == 2
        first = next(r for r in mine if r.data.tags[M.TAG_STAGE] == "explore")
        val = [r.data.metrics[M.SELECTED_VAL_ACCURACY] for r in mine]
        assert row["val acc, first seed"] == f"{first.data.metrics[M.SELECTED_VAL_ACCURACY]:.4f}"
        assert row["val acc, mean over seeds"].startswith(f"{statistics.fmean(val):.4f} ± ")
    assert "winner's curse, measured" in section
    assert "| 10.0 min: rungs of 2-4 epochs, 8 trainings planned |" in md.split("## Findings")[0]
    # "What matters" of the halving study reads its rung-0 candidates: one length, so the
    # rungs' epochs never show as a searched setting
    matters = _section(md, "What matters")
    halving_part = next(p for p in matters.split("### Study `")[1:] if "halving" in p)
    assert "epochs" not in halving_part


@pytest.mark.slow
def test_warm_started_candidates_and_the_tpe_study_beside_it(store, report):
    md, _ = report
    section = _section(md, "How the search spent its budget")
    assert "warm-started candidate(s) ✱" in section
    assert "(1 ✱)" in _rows(section)[0]["candidates"]  # one third of rung 0 at most
    side = _rows(section, 2)
    assert [r["strategy"].split(" ")[0] for r in side] == ["halving", "optuna"]
    assert side[1]["strategy"] == "optuna (tpe, median pruner)"
    assert side[0]["seeds"] == "2" and side[1]["trainings"] == "3"


@pytest.mark.slow
def test_json_best_is_the_confirmed_halving_winner_found_by_halving(store, report):
    uri, _, space = store
    md, doc = report
    best = doc["best"]
    pid, trials = _halving(uri)
    found = best["found_by"]
    assert found["strategy"] == "halving" and found["parent_run_id"] == pid
    assert found["space"] == space and found["budget_minutes"] == 10.0
    assert found["wall_s"] > 0 and found["parent_runs"] == 1
    # the confirmed configuration at full length on both seeds, never a shorter rung's
    assert best["epochs"] == 4 and best["seeds"] == [0, 1]
    assert set(best["run_ids"]) <= {r.info.run_id for r in trials}
    winner = _rows(_section(md, "How the search spent its budget"), 1)[0]["finalist"]
    runs = {r["id"]: r["runs"] for r in _rows(_section(md, "Runs"))}[winner.split("`")[1]]
    assert all(run_id in runs for run_id in best["run_ids"])  # the winner is the JSON's best


@pytest.mark.slow
def test_a_better_hand_trained_run_is_marked_and_named_apart(store, report):
    uri, _, _ = store
    md, doc = report
    hand = [r for r in _runs(uri) if "mlflow.parentRunId" not in r.data.tags
            and r.data.tags.get(M.TAG_ROLE) == "trial"]  # fmt: skip
    hand_val = statistics.fmean(r.data.metrics[M.SELECTED_VAL_ACCURACY] for r in hand)
    assert len(hand) == 2 and hand_val > doc["best"]["val_accuracy"]["mean"]  # it is better
    assert doc["best_by_hand"]["found_by"]["strategy"] == "by hand"
    assert set(doc["best_by_hand"]["run_ids"]) == {r.info.run_id for r in hand}
    assert not set(doc["best"]["run_ids"]) & {r.info.run_id for r in hand}
    board = _rows(_section(md, "Leaderboard"))  # full length, on several seeds
    marked = [r for r in board if r["id"].endswith("(by hand)")]
    assert len(marked) == 1 and marked[0] == board[0]  # ranked first, but not the best
    assert "**Trained by hand.**" in _section(md, "Findings")


def _trials(rows: list[dict]) -> pd.DataFrame:
    base = {"status": "FINISHED", "params.depth": "2", "params.augmentation": "none"}
    return _annotate(pd.DataFrame([base | r for r in rows]), ablation_ids=set())


def test_a_rung_s_shorter_schedule_is_the_same_candidate_but_another_configuration():
    t = _trials([
        {"run_id": "short", "params.seed": "0", "params.epochs": "11",
         "params.warmup_epochs": "2", "params.early_stopping_patience": "3"},
        {"run_id": "full", "params.seed": "0", "params.epochs": "100",
         "params.warmup_epochs": "20", "params.early_stopping_patience": "30"},
        {"run_id": "other", "params.seed": "0", "params.depth": "3", "params.epochs": "100",
         "params.warmup_epochs": "20", "params.early_stopping_patience": "30"},
    ])  # fmt: skip
    p = points(t)
    assert p.iloc[0] == p.iloc[1] != p.iloc[2]
    assert t["config"].nunique() == 3


def test_the_best_is_chosen_among_configurations_a_search_found():
    search = {"tags.mlflow.parentRunId": "p", "tags.study_name": "s"}
    rows = [{"run_id": f"h{s}", "params.seed": str(s), "params.depth": "3",
             "metrics.val_accuracy": 0.9} for s in range(3)]  # fmt: skip
    rows += [search | {"run_id": f"s{s}", "params.seed": str(s), "metrics.val_accuracy": 0.5}
             for s in range(3)]  # fmt: skip
    board = summarize(_trials(rows))
    assert list(board["by_hand"]) == [True, False]  # ranked first, yet not the best
    assert best_row(board)["run_ids"] == ["s0", "s1", "s2"]
    assert best_row(board[board["by_hand"]])["run_ids"] == ["h0", "h1", "h2"]


def test_a_halving_rung_s_shorter_runs_are_no_candidates_for_more_seeds():
    """A rung-0 run that scored higher on its short schedule is not named as a one-seed
    candidate above the confirmed winner: it was a different, shorter training."""
    run = {"tags.mlflow.parentRunId": "p", "tags.study_name": "s"}
    rung = run | {"tags.benchmark.rung": "0"}
    rows = [rung | {"run_id": "short", "params.seed": "0", "params.epochs": "11",
                    "metrics.val_accuracy": 0.9},
            run | {"run_id": "probe", "params.seed": "0", "params.epochs": "100",
                   "params.depth": "4", "metrics.val_accuracy": 0.8}]  # fmt: skip
    rows += [rung | {"run_id": f"w{s}", "params.seed": str(s), "params.epochs": "100",
                     "metrics.val_accuracy": 0.7} for s in range(3)]  # fmt: skip
    board = summarize(_trials(rows))
    best = best_row(board)
    assert best["run_ids"] == ["w0", "w1", "w2"]
    assert [r for above in unconfirmed_above(board, best)["run_ids"] for r in above] == ["probe"]


def test_a_resumed_halving_study_counts_both_parents_and_follows_candidates_across_them():
    """Rung 0 under the first parent run, the last rung and the confirmation under the second
    (the search was stopped and resumed; time ran short, so it skipped the middle rung): one
    study, its wall time both parents', survivors followed by candidate past the skipped
    rung, finalists ranked by their mean over seeds, found_by naming the winner's parent."""
    from benchmark.report.budget import budget_section, search_studies
    from benchmark.report.load import DatasetRuns
    from benchmark.report.origin import found_by

    t0 = pd.Timestamp("2026-12-01 10:00", tz="UTC")
    tags = {"tags.study_name": "s", "tags.cnn_benchmark_role": "search",
            "tags.strategy": "halving", "tags.rung_epochs": "2-3-4",
            "tags.budget_minutes": "10.0", "status": "FINISHED"}  # fmt: skip
    parents = pd.DataFrame([
        tags | {"run_id": "p1", "start_time": t0, "end_time": t0 + pd.Timedelta(minutes=3)},
        tags | {"run_id": "p2", "start_time": t0 + pd.Timedelta(hours=1),
                "end_time": t0 + pd.Timedelta(hours=1, minutes=4)},
    ])  # fmt: skip

    def run(rid, parent, depth, rung, epochs, val, stage="explore", seed=0):
        return {"run_id": rid, "status": "FINISHED", "tags.study_name": "s",
                "tags.mlflow.parentRunId": parent, "tags.benchmark.rung": str(rung),
                "tags.benchmark.stage": stage, "params.depth": str(depth),
                "params.epochs": str(epochs), "params.seed": str(seed),
                "metrics.val_accuracy": val, "metrics.trial_wall_s": 30.0,
                "start_time": t0, "end_time": t0 + pd.Timedelta(seconds=30)}  # fmt: skip

    rows = [run(f"r0-{d}", "p1", d, 0, 2, d / 10) for d in (1, 2, 3, 4)]
    rows += [run("r2-4", "p2", 4, 2, 4, 0.6), run("r2-3", "p2", 3, 2, 4, 0.5)]
    rows += [run("c-4", "p2", 4, 2, 4, 0.3, "confirm", 1), run("c-3", "p2", 3, 2, 4, 0.5,
                                                              "confirm", 1)]  # fmt: skip
    studies = search_studies(DatasetRuns("d", _trials(rows), parents))
    assert len(studies) == 1 and studies[0].wall_s == 7 * 60
    section = budget_section(studies)[0]
    assert "7.0 min of wall time in 2 parent run(s) (resumed)" in section
    rungs = _rows(section)
    assert [(r["rung"], r["epochs"], r["candidates"], r["survivors"]) for r in rungs[:3]] == [
        ("0", "2", "4", "2"), ("1", "3", "0", "0"), ("2", "4", "2", "2")]  # fmt: skip
    finalists = _rows(section, 1)
    assert [r["val acc, first seed"] for r in finalists] == ["0.5000", "0.6000"]  # 0.50 > 0.45
    found = found_by(studies, ["r2-3", "c-3"])
    assert (found["parent_run_id"], found["parent_runs"], found["wall_s"]) == ("p2", 2, 420.0)


def test_a_search_killed_with_its_machine_reads_its_own_budget_account():
    """A halving study whose commands were stopped (Ctrl-C) and killed (the machine's end):
    the budget spent is the study's account (`budget_spent_s`), not the commands' wall time
    (a killed command logs none); a stopped or orphaned run counts as killed, not failed,
    and as the same candidate as its completed rerun (which alone logged the class names);
    an orphan's duration (ended when a later command found it) is left out of the wall times."""
    from benchmark.report.budget import budget_section, search_studies
    from benchmark.report.load import DatasetRuns

    t0 = pd.Timestamp("2026-12-01 10:00", tz="UTC")
    parents = pd.DataFrame([{
        "run_id": "p", "status": "FINISHED", "tags.study_name": "s",
        "tags.cnn_benchmark_role": "search", "tags.strategy": "halving",
        "tags.rung_epochs": "2", "tags.budget_minutes": "200.0",
        "metrics.search_wall_s": 60.0, "metrics.budget_spent_s": 193.2 * 60,
        "start_time": t0, "end_time": t0 + pd.Timedelta(hours=9)}])  # fmt: skip

    def run(rid, status, minutes, **extra):
        return {"run_id": rid, "status": status, "tags.study_name": "s",
                "tags.mlflow.parentRunId": "p", "tags.benchmark.rung": "0",
                "tags.benchmark.stage": "explore", "params.seed": "0", "params.epochs": "2",
                "start_time": t0,
                "end_time": t0 + pd.Timedelta(minutes=minutes)} | extra  # fmt: skip

    done = {"params.class_names": "['a', 'b']", "metrics.val_accuracy": 0.7,
            "metrics.trial_wall_s": 600.0, "tags.trial_state": "complete"}  # fmt: skip
    rows = [run("stopped", "KILLED", 1, **{"tags.trial_state": "failed",
                                          "tags.failure_reason": "stopped by SIGINT"}),
            run("orphan", "KILLED", 90, **{"tags.failure_reason": M.ORPHAN_REASON}),
            run("done", "FINISHED", 10, **done)]  # fmt: skip
    (study,) = search_studies(DatasetRuns("d", _trials(rows), parents))
    section = budget_section([study])[0]
    assert "193.2 of 200 min of the budget spent (the search's own account) in 1 parent" in section
    assert "trainings: 3 (1 complete, 2 killed)" in section
    rung0 = _rows(section)[0]
    assert (rung0["candidates"], rung0["wall time (min)"]) == ("1", "11.0")  # 1 + 10, no 90
    assert "Wall times leave out 1 run(s) whose command died with them" in section
