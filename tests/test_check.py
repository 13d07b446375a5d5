"""Two stores that agree (issue 32): a torn, damaged, emptied or missing Optuna journal or MLflow
store, on real files made by one real small search on the shared data (copied for each test).

For each case: the line printed, the exit code, and the runs and trials afterwards (nothing
trained twice, nothing finished lost); `check` and `check --repair` on each and on an intact
store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from benchmark.cli import main
from benchmark.search import journal

REPO = Path(__file__).resolve().parents[1]
GRID = """
    strategy: grid
    fixed: {epochs: 1, padding: valid, filters_max: 16, steps_per_execution: 4}
    space:
      depth: {values: [2, 3]}
      augmentation: {values: [none, shift]}
"""
POINTS = [(2, "none"), (2, "shift"), (3, "none"), (3, "shift")]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, shared_data, session_cache) -> Path:
    """One real 4-point grid search (1 epoch, 64 images), its store and journal: the command
    a user runs, in a process of its own (its trials' worker is gone afterwards)."""
    where = tmp_path_factory.mktemp("searched")
    (where / "grid.yaml").write_text(textwrap.dedent(GRID))
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCHMARK_IN_PROCESS": "1",
           "BENCHMARK_CACHE_DIR": str(session_cache),
           "MLFLOW_TRACKING_URI": f"sqlite:///{where / 'mlflow.db'}"}  # fmt: skip
    for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(key, None)  # the search's own store has only experiment 0
    out = subprocess.run(_search_args(where, shared_data, python=True), cwd=where, env=env,
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "grid covered; 4 complete" in out.stdout
    return where


def _search_args(where: Path, data: Path, python: bool = False) -> list[str]:
    head = [sys.executable, "-m", "benchmark"] if python else []
    return [*head, "search", "--dataset", "cifar10", "--space", str(where / "grid.yaml"),
            "--data-dir", str(data), "--max-train-samples", "64", "--log-models", "none"]


def _copy(src: Path, dst: Path) -> None:
    """The search's files into this test's folder (where MLFLOW_TRACKING_URI points), the
    store's artifact paths moved with them."""
    for name in ("mlflow.db", "optuna.journal", "grid.yaml"):
        shutil.copyfile(src / name, dst / name)
    shutil.copytree(src / "mlruns", dst / "mlruns", dirs_exist_ok=True)
    with sqlite3.connect(dst / "mlflow.db") as con:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)",
                        (str(src), str(dst)))  # fmt: skip
    con.close()


@pytest.fixture
def copied(searched, tmp_path) -> Path:
    _copy(searched, tmp_path)
    return tmp_path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _finished_runs() -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="tags.cnn_benchmark_role = 'trial' and "
                              "attributes.status = 'FINISHED'")  # fmt: skip


def _study(where: Path) -> optuna.Study:
    store = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(where / "optuna.journal")))
    (name,) = optuna.get_all_study_names(store)
    return optuna.load_study(study_name=name, storage=store)


def _complete_once(where: Path, runs_before: set[str] | None = None) -> None:
    """Every grid point complete exactly once, each with its FINISHED run; with
    `runs_before`, no run beyond those (nothing trained twice)."""
    study = _study(where)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted((t.params["depth"], t.params["augmentation"]) for t in complete) == POINTS
    finished = {r.info.run_id for r in _finished_runs()}
    assert {t.user_attrs["run_id_0"] for t in complete} <= finished
    if runs_before is not None:
        assert finished == runs_before
    running = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                 filter_string="attributes.status = 'RUNNING'")  # fmt: skip
    assert not running


def _digest(where: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(where.iterdir())
            if p.is_file()}  # fmt: skip


def _tear(path: Path) -> None:
    """The last record cut short, as a write stopped mid-way leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:-40])


def _garbage(path: Path, at: int = 20) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(at, b"\x00\x00garbage\n")
    path.write_bytes(b"".join(lines))


# --- the journal read as a file (fast) ---------------------------------------------------


def test_a_scan_names_the_first_unreadable_line_and_a_torn_tail(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(b'{"op_code": 0}\n{"op_code": 1}\n{"op_co')
    found = journal.scan(str(path))
    assert (found.records, found.bad_line, found.torn, found.keep) == (2, 3, True, 30)
    assert journal.tail_torn(str(path))
    path.write_bytes(b'{"op_code": 0}\nnot json\n{"op_code": 1}\n')
    found = journal.scan(str(path))
    assert (found.bad_line, found.torn) == (2, False) and not journal.tail_torn(str(path))
    path.write_bytes(b'{"op_code": 0}\n\n')  # an empty last line is torn too
    assert journal.tail_torn(str(path))


# --- each case on a real search's files --------------------------------------------------


@pytest.mark.slow
def test_an_intact_store_is_all_well_and_check_changes_nothing(copied, capsys, shared_data):
    before, runs = _digest(copied), {r.info.run_id for r in _finished_runs()}
    code, out, err = _run(capsys, "check")
    assert code == 0, err
    assert out.splitlines()[-1].startswith("all is well")
    assert "SQLite integrity_check ok" in out and "records, all readable" in out
    code, out, _ = _run(capsys, "check", "--repair")
    assert code == 0 and out.splitlines()[-1].startswith("all is well")
    assert _digest(copied) == before  # no backup, no write
    code, out, err = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0 and "already complete (grid covered)" in out
    assert "restored" not in out + err and "trained again" not in out + err
    _complete_once(copied, runs)


@pytest.mark.slow
def test_a_torn_last_record_is_dropped_with_a_backup_and_the_search_goes_on(
    copied, capsys, shared_data
):
    runs = {r.info.run_id for r in _finished_runs()}
    _tear(copied / "optuna.journal")
    code, out, _ = _run(capsys, "check")
    assert code == 1 and "its last record (line 42) was cut short" in out
    code, out, err = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0, err
    (line,) = [x for x in err.splitlines() if "Optuna journal" in x]
    assert line.startswith(f"warning: Optuna journal {copied / 'optuna.journal'}: its last "
                           "record (line 42) was cut short and is dropped")  # fmt: skip
    assert list(copied.glob("optuna.journal.bak-*"))
    assert "grid covered; 4 complete" in out
    _complete_once(copied, runs)  # the interrupted trial took its finished run: no training
    code, out, _ = _run(capsys, "check")
    assert code == 0, out


@pytest.mark.slow
def test_check_repair_cuts_a_torn_tail_after_a_backup(copied, capsys, shared_data):
    runs = {r.info.run_id for r in _finished_runs()}
    _tear(copied / "optuna.journal")
    code, out, _ = _run(capsys, "check", "--repair")
    assert code == 0 and "kept the 41 readable records before it" in out
    (saved,) = copied.glob("optuna.journal.bak-*")
    assert saved.stat().st_size > (copied / "optuna.journal").stat().st_size
    code, out, _ = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0 and "grid covered; 4 complete" in out
    _complete_once(copied, runs)


@pytest.mark.slow
def test_a_garbage_line_inside_is_refused_in_one_line_then_repaired(copied, capsys, shared_data):
    runs = {r.info.run_id for r in _finished_runs()}
    _garbage(copied / "optuna.journal")
    code, out, err = _run(capsys, *_search_args(copied, shared_data))
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert line == (f"error: Optuna journal {copied / 'optuna.journal'} is damaged (line 21 is "
                    "not a readable record); to go on, keep the records before it and restore "
                    "the later finished trials from the tracking store with `python -m "
                    f"benchmark check --repair --storage {copied / 'optuna.journal'}`, or "
                    "start a new study with `--study-name NEW`")  # fmt: skip
    code, out, _ = _run(capsys, "check")
    assert code == 1 and "line 21 is not a readable record" in out
    assert "2 finished trial(s) in the tracking store are missing from the study" in out
    code, out, _ = _run(capsys, "check", "--repair")
    assert code == 0 and "restored 2 finished trial(s)" in out
    assert list(copied.glob("optuna.journal.bak-*"))
    code, out, err = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0 and "grid covered; 4 complete" in out, err
    _complete_once(copied, runs)


@pytest.mark.slow
def test_an_emptied_journal_is_rebuilt_from_the_runs_and_nothing_trains(
    copied, capsys, shared_data
):
    runs = {r.info.run_id for r in _finished_runs()}
    (copied / "optuna.journal").write_bytes(b"")
    code, out, _ = _run(capsys, "check")
    assert code == 1 and "4 finished trial(s) in the tracking store are missing" in out
    code, out, err = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if x.startswith("restored")]
    assert line.startswith("restored 4 finished trial(s) of study cifar10-grid-grid-")
    assert line.endswith("(the study was missing or empty); none is trained again")
    assert "already complete (grid covered)" in out
    _complete_once(copied, runs)
    study = _study(copied)
    values = {r.info.run_id: r.data.metrics["val_accuracy"] for r in _finished_runs()}
    assert all(t.value == pytest.approx(values[t.user_attrs["run_id_0"]]) for t in study.trials)
    assert all(t.distributions["depth"].choices == (2, 3) for t in study.trials)
    code, out, _ = _run(capsys, "check")
    assert code == 0, out


@pytest.mark.slow
def test_a_deleted_journal_is_restored_by_check_repair(copied, capsys, shared_data):
    runs = {r.info.run_id for r in _finished_runs()}
    (copied / "optuna.journal").unlink()
    code, out, _ = _run(capsys, "check")
    assert code == 1 and "no such file; it holds no study" in out
    assert not (copied / "optuna.journal").exists()  # a check without --repair makes nothing
    code, out, _ = _run(capsys, "check", "--repair")
    assert code == 0 and "restored 4 finished trial(s) from the tracking store" in out
    code, out, _ = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0 and "already complete (grid covered)" in out
    _complete_once(copied, runs)


@pytest.mark.slow
def test_a_deleted_store_retrains_the_complete_trials_it_lost(copied, capsys, shared_data):
    (copied / "mlflow.db").unlink()
    code, out, _ = _run(capsys, "check")
    assert code == 1 and "no such file; it holds no runs" in out
    assert "4 complete trial(s) have no FINISHED run in the tracking store" in out
    assert not (copied / "mlflow.db").exists()
    code, out, err = _run(capsys, *_search_args(copied, shared_data))
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if "have no FINISHED run" in x]
    assert line.startswith("4 complete trial(s) of study cifar10-grid-grid-")
    assert "(trials 0, 1, 2, 3): they are trained again; the study as it was is kept" in line
    assert "grid covered; 4 complete" in out
    _complete_once(copied)
    assert len(_finished_runs()) == 4  # each point trained once into the new store
    study = _study(copied)
    assert sum(t.user_attrs.get("interrupted") == "its runs are missing from the tracking "
               "store" for t in study.trials if t.state == TrialState.FAIL) == 4  # fmt: skip
    code, out, _ = _run(capsys, "check")
    assert code == 0, out


@pytest.mark.slow
def test_check_repair_reopens_trials_whose_store_is_gone(copied, capsys):
    (copied / "mlflow.db").unlink()
    code, out, _ = _run(capsys, "check", "--repair")
    assert code == 0 and "reopened as interrupted; the next search trains them again" in out
    study = _study(copied)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4
    assert [t.number for t in study.trials] == [0, 1, 2, 3]  # numbers kept
    assert list(copied.glob("optuna.journal.bak-*"))


@pytest.mark.slow
def test_a_half_written_sqlite_store_is_one_line_and_exit_2_from_every_command(
    copied, capsys, shared_data
):
    db = copied / "mlflow.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    journal_before = (copied / "optuna.journal").read_bytes()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    expected = (f"error: MLflow tracking store {uri!r} is damaged (database disk image is "
                f"malformed); restore it from a backup (`python -m benchmark check "
                f"--tracking-uri {uri}` says what it holds)")  # fmt: skip
    data = ["--data-dir", str(shared_data)]
    commands = [
        _search_args(copied, shared_data),
        ["train", "--dataset", "cifar10", *data, "--epochs", "1", "--max-train-samples", "64"],
        ["report", "--out", str(copied / "reports")],
        ["predict", "--model", "models:/cnn-benchmark-cifar10@champion", str(copied)],
        ["ablate", "--dataset", "cifar10", *data],
        ["lab", "--datasets", "cifar10", *data, "--epochs", "1"],
    ]
    for args in commands:
        code, out, err = _run(capsys, *args)
        lines = [x for x in err.splitlines() if x.strip()]
        assert (code, lines) == (2, [expected]), (args[0], err[-2000:])
    code, out, _ = _run(capsys, "check")
    assert code == 1 and "is damaged (integrity_check: " in out
    code, out, _ = _run(capsys, "check", "--repair")
    assert code == 1  # nothing to mend there: restore the store from a backup
    assert (copied / "optuna.journal").read_bytes() == journal_before
