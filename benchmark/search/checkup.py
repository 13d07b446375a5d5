"""`python -m benchmark check`: read a tracking store and its Optuna storage, say in plain lines
whether they are whole and agree, and with `repair` fix what a search would fix, after a
backup.

It checks SQLite's `PRAGMA integrity_check` on the tracking store, that every journal line is
a record Optuna can replay, that every complete trial has its FINISHED runs and every
finished trial run is in its study (benchmark.search.integrity), and that no run is left
RUNNING by a worker that is gone. Without `repair` nothing is written: a damaged journal is
read from a temporary copy of its readable records, a missing store or journal is not made.
May import: benchmark.metrics, benchmark.runfilter, benchmark.search.{space, storage, study,
journal, integrity}.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow
import optuna

from benchmark import metrics as M
from benchmark.search import integrity, journal
from benchmark.search.space import SearchSpace, load_space
from benchmark.search.storage import default_storage, journal_path, make_storage, redact
from benchmark.search.study import (
    end_orphan,
    is_orphan,
    other_worker,
    study_parents,
    trial_counts,
)


@dataclass
class Checkup:
    """What one check found and did: problems left, fixes made, backups taken."""

    say: Callable[[str], Any]
    repair: bool
    storage: str = ""
    problems: int = 0
    fixed: int = 0
    saved: dict[str, str] = field(default_factory=dict)  # file -> its backup
    tmp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="benchmark-check-"))

    def problem(self, line: str) -> None:
        self.problems += 1
        self.say(line)

    def backup(self) -> str:
        """One copy of the study's file before the first change this check makes."""
        if self.storage not in self.saved:
            self.saved[self.storage] = integrity.backup(self.storage) or "none (a server)"
        return self.saved[self.storage]


def check(storage: str | None, tracking_uri: str | None, repair: bool,
          say: Callable[[str], Any] = print) -> int:  # fmt: skip
    """Exit status: 0 when all is well (or was repaired), 1 when problems are left."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    c = Checkup(say=say, repair=repair, storage=storage or default_storage())
    try:
        tracked = _check_tracking(mlflow.get_tracking_uri(), c)
        store = _open_storage(c)
        runs = _trial_runs() if tracked == "ok" else []
        for name in _study_names(store, runs, c.storage):
            if tracked == "damaged":  # its runs unknown: nothing to compare the study with
                c.say(f"study {name}: not compared with the damaged tracking store")
                continue
            _check_study(name, store, [r for r in runs if r.data.tags.get("study_name") == name],
                         c)  # fmt: skip
        if tracked == "ok":
            _check_running(c)
    finally:
        shutil.rmtree(c.tmp, ignore_errors=True)
    return _verdict(c)


def _verdict(c: Checkup) -> int:
    kept = "; backups: " + ", ".join(c.saved.values()) if c.saved else ""
    if c.problems:
        how = "" if c.repair else "; `python -m benchmark check --repair` fixes what it can"
        c.say(f"{c.problems} problem(s) found{how}{kept}")
        return 1
    if c.fixed:
        c.say(f"repaired: {c.fixed} fix(es); run the search again to go on{kept}")
    else:
        c.say("all is well: the tracking store and the study storage are whole and agree; "
              "nothing changed")  # fmt: skip
    return 0


def _check_tracking(uri: str, c: Checkup) -> str:
    """Whether the store's runs can be read ("ok"), or it is "missing" or "damaged": an
    SQLite file is checked whole first, and a missing one is not made (MLflow would make an
    empty store on the first query)."""
    shown = redact(uri)
    if not uri.startswith("sqlite:///"):
        c.say(f"tracking store {shown}: not an SQLite file; its integrity is the server's")
        return "ok"
    path = uri.removeprefix("sqlite:///")
    if not os.path.exists(path):
        c.say(f"tracking store {shown}: no such file; it holds no runs")
        return "missing"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    if rows != ["ok"]:
        c.problem(f"tracking store {shown} is damaged (integrity_check: {rows[0][:120]}); "
                  "restore it from a backup; its runs cannot be checked")  # fmt: skip
        return "damaged"
    c.say(f"tracking store {shown}: SQLite integrity_check ok")
    return "ok"


def _open_storage(c: Checkup) -> Any:
    """The study storage to read: the journal scanned first; a damaged one cut back to its
    readable records under `repair`, else read from a copy of them."""
    path = journal_path(c.storage)
    if path is None:
        return make_storage(c.storage)
    if not os.path.exists(path):
        c.say(f"Optuna journal {path}: no such file; it holds no study")
        return make_storage(c.storage) if c.repair else optuna.storages.InMemoryStorage()
    found = journal.scan(path)
    if found.bad_line is None:
        c.say(f"Optuna journal {path}: {found.records} records, all readable")
        return make_storage(c.storage)
    what = (f"its last record (line {found.bad_line}) was cut short" if found.torn
            else f"line {found.bad_line} is not a readable record")  # fmt: skip
    if c.repair:
        saved = c.backup()
        journal.cut(path, found)
        c.fixed += 1
        c.say(f"Optuna journal {path}: {what}; kept the {found.records} readable records "
              f"before it (the file as it was: {saved})")  # fmt: skip
        return make_storage(c.storage)
    c.problem(f"Optuna journal {path}: {what}; --repair keeps the {found.records} readable "
              "records before it and restores later finished trials from the tracking store")
    copy = os.path.join(c.tmp, "readable.journal")
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read(found.keep))
    return make_storage(copy)


def _trial_runs() -> list[Any]:
    """Every FINISHED trial run of any study, in one query."""
    return mlflow.search_runs(
        search_all_experiments=True, output_format="list",
        filter_string=f"attributes.status = 'FINISHED' and tags.{M.TAG_ROLE} = 'trial'",
    )  # fmt: skip


def _same_storage(a: str, b: str) -> bool:
    """Two journals of one file name are the same storage: a project folder moved or copied
    elsewhere keeps its studies, whose parent runs name the journal where it was."""
    pa, pb = journal_path(a), journal_path(b)
    if pa is not None and pb is not None:
        return os.path.basename(pa) == os.path.basename(pb)
    return redact(a) == redact(b)


def _study_names(store: Any, runs: list[Any], storage: str) -> list[str]:
    """The storage's studies, and studies whose parent run says they live in this storage
    but which it does not hold (a journal emptied or deleted)."""
    names = set(optuna.get_all_study_names(store))
    for name in {r.data.tags.get("study_name") for r in runs} - names - {None}:
        if any(_same_storage(p.data.tags.get("storage", ""), storage)
               for p in study_parents(name)):  # fmt: skip
            names.add(name)
    return sorted(names)


def space_of(study_name: str) -> tuple[SearchSpace, int] | None:
    """The study's space and seeds, as its latest parent run logged them (the space file
    under `search_space/`, the tags `strategy` and `seeds`); None without such a run."""
    from benchmark import quiet

    quiet.import_tensorflow()  # a space is validated against the models: TF, quietly
    for parent in reversed(study_parents(study_name)):
        tags, run_id = parent.data.tags, parent.info.run_id
        try:
            (art,) = mlflow.MlflowClient().list_artifacts(run_id, "search_space")
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=art.path,
                                                        dst_path=tempfile.mkdtemp())  # fmt: skip
            return load_space(local, strategy=tags.get("strategy")), int(tags.get("seeds", 1))
        except Exception:  # noqa: BLE001  (no artifact, an old parent: try the next)
            continue
    return None


def _check_study(name: str, store: Any, runs: list[Any], c: Checkup) -> None:
    """One study against its finished trial runs: counts, lost runs, missing trials."""
    held = name in optuna.get_all_study_names(store)
    if held:
        study = optuna.load_study(study_name=name, storage=store)
        n = trial_counts(study)
        c.say(f"study {name}: {n['complete']} complete, {n['pruned']} pruned, {n['failed']} "
              f"failed, {n['interrupted']} interrupted, {n['running']} running; "
              f"{len(runs)} finished trial run(s) in the tracking store")  # fmt: skip
    else:
        if c.repair:
            c.backup()  # before the study is made again in it
        study = optuna.create_study(study_name=name, direction="maximize",
                                    storage=store if c.repair else None)  # fmt: skip
        c.say(f"study {name}: not in the study storage; {len(runs)} finished trial run(s) of "
              "it in the tracking store")  # fmt: skip
    study = _check_lost(study, store, runs, c)
    if not integrity.unreferenced(study, runs):
        return  # every finished run is a trial's: no space to read, no TensorFlow
    found = space_of(name)
    if found is None:
        c.problem(f"study {name}: {len(runs)} finished run(s), but no parent run with its "
                  "space (search_space/) to restore them from")  # fmt: skip
        return
    trials = integrity.restorable(study, found[0], runs, found[1])
    if not trials:
        return
    if not c.repair:
        c.problem(f"study {name}: {len(trials)} finished trial(s) in the tracking store are "
                  "missing from the study; --repair (or the next search) restores them")
        return
    c.backup()
    integrity.restore(study, found[0], trials)
    c.fixed += 1
    c.say(f"study {name}: restored {len(trials)} finished trial(s) from the tracking store")


def _check_lost(study: optuna.Study, store: Any, runs: list[Any], c: Checkup) -> optuna.Study:
    """Complete trials whose runs the tracking store lacks: reopened under `repair` (the
    study then made again: the one returned)."""
    lost = integrity.lost_trials(study, {r.info.run_id for r in runs})
    if not lost:
        return study
    name, shown = study.study_name, ", ".join(str(t.number) for t in lost[:10])
    if not c.repair or (busy := other_worker(study)) is not None:
        why = f" (left: worker {busy} is training)" if c.repair else ""
        c.problem(f"study {name}: {len(lost)} complete trial(s) have no FINISHED run in the "
                  f"tracking store (trials {shown}); --repair reopens them and the next "
                  f"search trains them again{why}")  # fmt: skip
        return study
    c.backup()
    integrity.reopen(study, store, lost)
    c.fixed += 1
    c.say(f"study {name}: {len(lost)} complete trial(s) without a FINISHED run (trials "
          f"{shown}) reopened as interrupted; the next search trains them again")  # fmt: skip
    return optuna.load_study(study_name=name, storage=store)


def _check_running(c: Checkup) -> None:
    """Runs left RUNNING: a local worker that is gone left them (KILLED under `repair`);
    others may belong to a command at work now, and are only counted."""
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="attributes.status = 'RUNNING'")  # fmt: skip
    orphans = [run for run in runs if is_orphan(run)]
    if len(runs) > len(orphans):
        c.say(f"runs: {len(runs) - len(orphans)} RUNNING, of a command that may be at work now")
    if not orphans:
        c.say("runs: none left RUNNING by a worker that is gone")
        return
    if not c.repair:
        c.problem(f"runs: {len(orphans)} left RUNNING by a worker that is gone; --repair (or "
                  "the next search of their study) marks them KILLED")  # fmt: skip
        return
    for run in orphans:
        end_orphan(run)
    c.fixed += 1
    c.say(f"runs: {len(orphans)} left RUNNING by a worker that is gone, marked KILLED")
