"""Where a command's MLflow runs go, decided once and passed down as a `Tracking` object.

One experiment per dataset, `cnn-benchmark/<dataset>`, unless `--experiment` or
MLFLOW_EXPERIMENT_NAME (or MLFLOW_EXPERIMENT_ID) names another. Under `mlflow run` the run
MLflow made for the command (MLFLOW_RUN_ID) becomes the search's parent (or the trained run)
when it already sits in that experiment; MLflow Projects cannot choose an experiment
themselves, so a run `mlflow run` put in "Default" stays a small `wrapper` run that links to
the search's parent.

`prepare_tracking` reads MLFLOW_RUN_ID once and takes it out of the environment, the one
edit of it: a trial process or a later `mlflow.start_run()` would otherwise resume that run.
From then on the id travels in the Tracking object, not in globals or variables.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import mlflow
from mlflow.exceptions import MlflowException

from benchmark import metrics as M
from benchmark.errors import UserError
from benchmark.stop import TAG_SIGNAL
from benchmark.train.outcome import run_outcome

DEFAULT_EXPERIMENT = "cnn-benchmark"  # a dataset's runs go to cnn-benchmark/<dataset>
DEFAULT_EXPERIMENT_ID = "0"  # MLflow's "Default": where `mlflow run` puts runs unless told
ENTRY_POINT_TAG = "mlflow.project.entryPoint"  # set by `mlflow run` on the run it creates
PROJECT_RUN_ENV = "MLFLOW_RUN_ID"  # what `mlflow run` sets for its command
# Fail in seconds, not after MLflow's minutes of retries with backoff.
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class ParentClaim(Protocol):
    """Which run is a study's one parent, as the study records it (the search stage's
    benchmark.search.parent.StudyParent): this module knows runs, not studies."""

    def recorded(self, experiment_id: str) -> str | None:
        """The study's parent run in this experiment, if it has one."""
        ...

    def claim(self, run_id: str) -> str:
        """Offer a new run as the parent; returns the run that is (the first offered)."""
        ...

    def handover(self) -> str | None:
        """Another live worker still training trials of the study (its `worker`), or None."""
        ...


@dataclass(frozen=True)
class Tracking:
    """The store, the experiment the user chose (`--experiment`), and the run `mlflow run`
    made for this command (None outside `mlflow run`)."""

    uri: str
    experiment: str | None = None
    project_run: str | None = None

    @classmethod
    def from_env(cls) -> Tracking:
        """The context as the environment says, without changing it (tests, the report)."""
        return cls(uri=mlflow.get_tracking_uri(), project_run=os.environ.get(PROJECT_RUN_ENV))

    def option(self, name: str, value: str) -> str:
        """How the user passes an option on the route they came by: `-P name=` or `--name`."""
        if self.project_run:
            return f"-P {name}={value}"
        return f"--{name.replace('_', '-')} {value}"

    def wanted_experiment(self, dataset: str, project_experiment: str | None = None) -> str | None:
        """The experiment name asked for, or None: keep the experiment MLflow already has.

        `project_experiment` is the experiment of the `mlflow run` run: one other than
        Default was chosen with `mlflow run --experiment-name/--experiment-id`, so it stays.
        """
        if chosen := self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME"):
            return chosen
        if project_experiment is not None:
            return experiment_for(dataset) if project_experiment == DEFAULT_EXPERIMENT_ID else None
        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return None
        return experiment_for(dataset) if dataset else DEFAULT_EXPERIMENT

    def mark_project_run(self, role: str, note: str | None = None, **tags: str) -> None:
        """Say what the `mlflow run` run of this command is (report, wrapper), so the report
        and UI filters tell it from trials. No-op outside `mlflow run`; never raises."""
        if not self.project_run:
            return
        values = {t: role for t in M.ROLE_TAGS} | tags
        if note:
            values[M.TAG_NOTE] = note
        with _quick_http(), contextlib.suppress(Exception):
            _tag_quietly(self.project_run, values)

    @contextlib.contextmanager
    def search_parent(self, dataset: str, run_name: str, tags: dict[str, str],
                      study: ParentClaim | None = None) -> Iterator[mlflow.ActiveRun]:  # fmt: skip
        """The search's parent run: the study's own when it has one (a resume, or another
        worker: reopened RUNNING, tag `resumes` counting up), else the `mlflow run` run when
        there is one in the right experiment (no extra run), else a new run in the dataset's
        experiment, offered to the study as its parent (`study.claim`: a command that
        started at the same moment may win, and this one then reopens that run instead).

        It ends FINISHED, or on a failure FAILED (Ctrl-C: KILLED) with the reason in a tag;
        while another worker still trains trials of the study it stays RUNNING, handed to that
        worker. The experiment is passed to MLflow, never made process-wide with
        set_experiment, so a caller's (or a test's) later runs land where they would have
        anyway; trials find it through their parent.
        """
        client = mlflow.MlflowClient()
        wrapper = client.get_run(self.project_run) if self.project_run else None
        here = wrapper.info.experiment_id if wrapper else None
        experiment_id = self._experiment_of_search(dataset, here)
        describe_experiment(experiment_id, dataset)
        reopen = study.recorded(experiment_id) if study is not None else None
        adopt = reopen is None and wrapper is not None and experiment_id == here
        if reopen is None:
            run = mlflow.start_run(run_id=self.project_run if adopt else None,
                                   experiment_id=None if adopt else experiment_id,
                                   run_name=run_name, tags=tags | {M.TAG_RESUMES: "0"})  # fmt: skip
            mine = run.info.run_id
            if study is not None and (first := study.claim(mine)) != mine:
                mlflow.end_run()  # another command's run was first: this one goes
                if not adopt:
                    client.delete_run(mine)
                reopen, adopt = first, False
        if reopen is not None:
            run = _reopen(client, reopen, run_name, tags)
        if wrapper is not None and not adopt:
            self._link_wrapper(run.info.experiment_id, run.info.run_id, run_name,
                               resumed=reopen is not None)  # fmt: skip
        opened = time.time()
        try:
            yield run
        except KeyboardInterrupt as exc:  # SIGTERM, Ctrl-C: KILLED; a full disk: FAILED
            _, reason, status, extra = run_outcome(exc)
            _close(run.info.run_id, status, {M.TAG_STATUS_REASON: reason[:500]} | extra,
                   opened, study)  # fmt: skip
            raise
        except BaseException as exc:  # the parent says why it FAILED, as a trial does
            reason = (str(exc) or type(exc).__name__)[:500]
            _close(run.info.run_id, "FAILED", {M.TAG_STATUS_REASON: reason}, opened, study)
            raise
        _close(run.info.run_id, "FINISHED", {}, opened, study)

    def _experiment_of_search(self, dataset: str, here: str | None) -> str:
        if (name := self.wanted_experiment(dataset, here)) is not None:
            return experiment_id_for(name)
        if here is not None:
            return here
        return os.environ["MLFLOW_EXPERIMENT_ID"]  # MLFLOW_EXPERIMENT_ID chose it

    def _link_wrapper(self, experiment: str, run_id: str, run_name: str,
                      resumed: bool) -> None:  # fmt: skip
        """The `mlflow run` run that is not the search's parent points at it: the parent is
        in another experiment, or the study already had one (a resume, another worker)."""
        where = mlflow.MlflowClient().get_experiment(experiment).name
        link = run_link(experiment, run_id, run_name)
        if resumed:
            note = (f"This `mlflow run` continued a search whose parent run is {link} "
                    f"(experiment `{where}`): one parent run per search.")  # fmt: skip
        else:
            note = (f"This `mlflow run` ran its search in experiment `{where}`: {link}. Pass "
                    "`--experiment-name` to `mlflow run` to have the search in this run "
                    "itself.")  # fmt: skip
        _tag_quietly(self.project_run, {
            **{t: "wrapper" for t in M.ROLE_TAGS}, M.TAG_SEARCH_RUN: run_id, M.TAG_NOTE: note,
        })  # fmt: skip


def _reopen(client: mlflow.MlflowClient, run_id: str, run_name: str,
            tags: dict[str, str]) -> mlflow.ActiveRun:  # fmt: skip
    """The study's parent RUNNING again, its `resumes` one up and the reason an earlier
    command ended it (a stop, a failure) taken off: that is history, not its state now."""
    before = client.get_run(run_id).data.tags
    resumes = int(before.get(M.TAG_RESUMES, "0")) if before.get(M.TAG_RESUMES, "").isdigit() else 0
    for stale in (M.TAG_STATUS_REASON, TAG_SIGNAL):
        if stale in before:
            client.delete_tag(run_id, stale)
    return mlflow.start_run(run_id=run_id, run_name=run_name,
                            tags=tags | {M.TAG_RESUMES: str(resumes + 1)})  # fmt: skip


def _close(run_id: str, status: str, tags: dict[str, str], opened: float,
           study: ParentClaim | None) -> None:  # fmt: skip
    """End this command's hold on the parent: its seconds added to `search_wall_s` (the
    parent's start and end span the pauses between resumes too), then `status` and the
    reason's tags, unless another worker still trains: then it stays RUNNING, in that
    worker's name, so that a stop of this process (benchmark.stop ends the runs in its own
    name) leaves it alone and the last worker out ends it."""
    client = mlflow.MlflowClient()
    with contextlib.suppress(MlflowException):
        run = client.get_run(run_id)
        before = run.data.metrics.get(M.SEARCH_WALL_TIME)
        if before is None:  # a parent from before this metric: its own span
            info = run.info
            before = (info.end_time - info.start_time) / 1000 if info.end_time else 0.0
        client.log_metric(run_id, M.SEARCH_WALL_TIME, before + time.time() - opened)
    other = None
    if study is not None:
        with contextlib.suppress(Exception):  # a storage that went away: end it as usual
            other = study.handover()
    if other:
        client.set_tag(run_id, "worker", other)
        mlflow.end_run()
        client.update_run(run_id, status="RUNNING")
        return
    if tags:
        client.log_batch(run_id, tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()])
    mlflow.end_run(status)


def prepare_tracking(experiment: str | None = None, dataset: str | None = None) -> Tracking:
    """Point MLflow at its store and check it answers, before any training starts.

    Default store: ./mlflow.db (SQLite); MLFLOW_TRACKING_URI wins. The experiment:
    `experiment`, else MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID, else
    `cnn-benchmark/<dataset>` (plain `cnn-benchmark` when the dataset is not known here; a
    search picks its dataset's experiment itself, see `Tracking.search_parent`). Under
    `mlflow run` the run already exists and nothing is switched here.
    """
    tracking = Tracking(uri=mlflow.get_tracking_uri(), experiment=experiment,
                        project_run=os.environ.pop(PROJECT_RUN_ENV, None) or None)  # fmt: skip
    try:
        with _quick_http():
            if tracking.project_run:
                mlflow.search_experiments(max_results=1)
            elif name := tracking.wanted_experiment(dataset or ""):
                mlflow.set_experiment(name)
            else:
                mlflow.search_experiments(max_results=1)
    except Exception as exc:  # any failure here means "cannot track", whatever its type
        if (line := damaged_store(exc, tracking.uri)) is not None:
            raise UserError(line) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"MLflow tracking store {tracking.uri!r} is unreachable ({first[:160]}); "
            "check MLFLOW_TRACKING_URI"
        ) from None
    return tracking


# SQLite's words for a file that is not (or no longer) a whole database: half a file, a
# file of something else. A store that says so is damaged, not away for a moment.
DAMAGED = ("database disk image is malformed", "file is not a database",
           "malformed database schema")  # fmt: skip


def damaged_store(exc: BaseException, uri: str | None = None) -> str | None:
    """The one line for an exception (or one it was raised from) that says the tracking
    store's file is damaged, naming the store; None for anything else. Every command's
    errors pass here (benchmark.cli.main), so none ends in SQLAlchemy's traceback."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause)
        if hit := next((d for d in DAMAGED if d in text), None):
            where = uri or mlflow.get_tracking_uri()
            return (f"MLflow tracking store {where!r} is damaged ({hit}); restore it from a "
                    f"backup (`python -m benchmark check --tracking-uri {where}` says what "
                    "it holds)")  # fmt: skip
        cause = cause.__cause__ or cause.__context__
    return None


# --- the experiment and the store ---------------------------------------------------------


@contextlib.contextmanager
def _quick_http() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in QUICK_HTTP}
    os.environ.update({k: v for k, v in QUICK_HTTP.items() if saved[k] is None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def experiment_for(dataset: str) -> str:
    """The default experiment of a dataset's runs, the same for every route."""
    return f"{DEFAULT_EXPERIMENT}/{dataset}"


def experiment_id_for(name: str) -> str:
    """The experiment's id, created when missing (two workers may race to create it)."""
    client = mlflow.MlflowClient()
    for _ in range(2):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise UserError(
                    f"MLflow experiment {name!r} is deleted; restore it (`mlflow experiments "
                    f"restore --experiment-id {exp.experiment_id}`) or choose another "
                    "(`--experiment NAME`; `mlflow run --experiment-name NAME`)"
                )
            return exp.experiment_id
        try:
            return client.create_experiment(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    raise AssertionError("unreachable")


def run_link(experiment_id: str, run_id: str, text: str) -> str:
    """A markdown link that the MLflow UI resolves inside a description."""
    return f"[{text}](#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning)"


def _tag_quietly(run_id: str, tags: dict[str, str]) -> None:
    with contextlib.suppress(MlflowException):
        mlflow.MlflowClient().log_batch(
            run_id, tags=[mlflow.entities.RunTag(k, str(v)) for k, v in tags.items()]
        )


EXPERIMENT_NOTE_HEAD = "cnn-benchmark runs"


def experiment_note(dataset: str | None) -> str:
    """The experiment's description: where things are and which columns compare trials."""
    what = f" on **{dataset}**" if dataset else ""
    return f"""{EXPERIMENT_NOTE_HEAD}{what}.

- Each search is one parent run, `search-<study>` (`ablation-<study>` for an ablation): its \
description holds the study's leaderboard, its artifacts the full report (`report/`), and \
its tags `best_run` and the study's counts. Its trials are nested under it, one run per \
configuration and seed.
- To compare trials in the table, show only trials (search box: \
``tags.`benchmark.role` = 'trial'``), sort by `val_accuracy` and add these columns \
(Columns button):
  - metrics: `val_accuracy`, `test_accuracy`, `overfit_gap`, `param_count`, \
`train_time_s`, `images_per_s`, `best_epoch`
  - params: `depth`, `kernel_size`, `dense_units`, `augmentation`, `learning_rate`, `seed`
  - tags: `overfit`, `trial_state`
- Select trials and press **Compare** for parallel coordinates of the params against \
`val_accuracy`.
- Models are selected on `val_accuracy` only; `test_accuracy` is shown, never ranked on.
"""


def describe_experiment(experiment_id: str, dataset: str) -> None:
    """Write the experiment's description unless a user wrote their own."""
    client = mlflow.MlflowClient()
    try:
        exp = client.get_experiment(experiment_id)
        current = exp.tags.get(M.TAG_NOTE, "")
        if not current.strip() or current.startswith(EXPERIMENT_NOTE_HEAD):
            # one dataset's experiment says which; one the user chose may hold several
            text = experiment_note(dataset if exp.name == experiment_for(dataset) else None)
            if text != current:
                client.set_experiment_tag(experiment_id, M.TAG_NOTE, text)
    except MlflowException:
        pass  # a store that refuses experiment tags still tracks the search


# --- the `mlflow run` run of a command that did not get far -----------------------------


def end_project_run(run_id: str | None, reason: str, status: str = "FAILED") -> None:
    """A command that ends in a one-line error (or Ctrl-C) under `mlflow run`: its run is
    ended FAILED (KILLED) with the reason as a tag, so nothing stays RUNNING and nothing
    looks like a trial. A run that a search or trial already made its own keeps its role;
    one that never got that far becomes a `wrapper` (a `report` for the report entry).
    `run_id`: the `mlflow run` run, read when the command started (None: no-op). Never
    raises: the error line matters more."""
    if not run_id:
        return
    with _quick_http(), contextlib.suppress(Exception):
        client = mlflow.MlflowClient()
        run = client.get_run(run_id)
        tags = run.data.tags
        values = {}
        if not tags.get(M.TAG_STATUS_REASON):
            values[M.TAG_STATUS_REASON] = reason[:500]
        if not any(tags.get(t) for t in M.ROLE_TAGS) and M.TAG_DIGEST not in tags:
            role = "report" if tags.get(ENTRY_POINT_TAG) == "report" else "wrapper"
            values |= {t: role for t in M.ROLE_TAGS}
        if values:
            _tag_quietly(run_id, values)
        if run.info.status == "RUNNING":
            client.set_terminated(run_id, status)
