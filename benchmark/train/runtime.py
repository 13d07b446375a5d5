"""Facts about where a trial runs: device, versions, commit; and the tracking store.

Tagged on every run so a number in a report leads back to the hardware and code behind it.

Where runs go: one experiment per dataset, `cnn-benchmark/<dataset>`, unless `--experiment`
or MLFLOW_EXPERIMENT_NAME (or MLFLOW_EXPERIMENT_ID) names another. Under `mlflow run` the
run MLflow made for the command (MLFLOW_RUN_ID) becomes the search's parent when it already
sits in that experiment; MLflow Projects cannot choose an experiment themselves, so a run
`mlflow run` put in "Default" stays a small `wrapper` run that links to the search's parent.
TensorFlow is imported only by the functions that need it: the report and the CLI's error
path use this module too, and neither should pay TensorFlow's start-up.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from benchmark import metrics as M
from benchmark import stop
from benchmark.errors import UserError

DEFAULT_EXPERIMENT = "cnn-benchmark"  # a dataset's runs go to cnn-benchmark/<dataset>
DEFAULT_EXPERIMENT_ID = "0"  # MLflow's "Default": where `mlflow run` puts runs unless told
ENTRY_POINT_TAG = "mlflow.project.entryPoint"  # set by `mlflow run` on the run it creates
# Fail in seconds, not after MLflow's minutes of retries with backoff.
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

_chosen_experiment: str | None = None  # --experiment, as prepare_tracking last saw it
_project_run: str | None = None  # MLFLOW_RUN_ID, remembered: MLflow deletes it when it starts it


@functools.cache
def gpu_name() -> str | None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)


@functools.cache
def device_name() -> str:
    """GPU name where there is one, else the CPU model and its core count."""
    if gpu := gpu_name():
        return f"GPU: {gpu}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model} x{os.cpu_count()}"


def trial_threads() -> int | None:
    """The thread count this trial process was given (`--workers N`), or None: TF's default."""
    from benchmark.quiet import THREADS_ENV

    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def configure_threads() -> None:
    """Cap TensorFlow's thread pools at trial_threads(), and let trials that share a GPU
    grow their memory instead of each taking all of it. Call before TF runs an op."""
    import tensorflow as tf

    try:
        if (threads := trial_threads()) is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # TF already initialised (an op ran): its pools stay as they are
        pass


def pin_to_cores(cores: tuple[int, ...]) -> None:
    """Run every thread of this process (TensorFlow's pools were started by the warm-up)
    and the threads they start on `cores` only: N trials on one machine then share its
    cores without changing their thread counts, hence their numbers."""
    tasks = Path("/proc/self/task")
    if not hasattr(os, "sched_setaffinity") or not tasks.is_dir():
        return  # not Linux: trials share the cores as the OS schedules them
    for tid in tasks.iterdir():
        try:
            os.sched_setaffinity(int(tid.name), cores)
        except (OSError, ValueError):  # a thread that ended meanwhile
            pass


def jit_compile() -> bool | str:
    """XLA only where it pays: measured 2-3x slower on this CPU, Keras decides on a GPU."""
    return "auto" if gpu_name() else False


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def version_tags() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "device": device_name(),
        "git_commit": git_commit(),
    } | ({"gpu_name": gpu} if (gpu := gpu_name()) else {})


# --- where runs go ----------------------------------------------------------------------


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


def project_run_id() -> str | None:
    """The run `mlflow run` created for this command, if it runs under `mlflow run`."""
    return os.environ.get("MLFLOW_RUN_ID") or _project_run


def option(name: str, value: str) -> str:
    """How the user passes an option on the route they came by: `-P name=` or `--name`."""
    if project_run_id():
        return f"-P {name}={value}"
    return f"--{name.replace('_', '-')} {value}"


def prepare_tracking(experiment: str | None = None, dataset: str | None = None) -> str:
    """Point MLflow at its store and check it answers, before any training starts.

    Default store: ./mlflow.db (SQLite); MLFLOW_TRACKING_URI wins. The experiment:
    `experiment`, else MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID, else
    `cnn-benchmark/<dataset>` (plain `cnn-benchmark` when the dataset is not known here; a
    search picks its dataset's experiment itself, see `search_parent`). Under `mlflow run`
    the run already exists (MLFLOW_RUN_ID) and nothing is switched here.
    """
    global _chosen_experiment, _project_run
    _chosen_experiment = experiment
    _project_run = os.environ.get("MLFLOW_RUN_ID")
    uri = mlflow.get_tracking_uri()
    try:
        with _quick_http():
            if _project_run:
                mlflow.search_experiments(max_results=1)
            elif name := _wanted_experiment(dataset or ""):
                mlflow.set_experiment(name)
            else:
                mlflow.search_experiments(max_results=1)
    except Exception as exc:  # any failure here means "cannot track", whatever its type
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"MLflow tracking store {uri!r} is unreachable ({first[:160]}); "
            "check MLFLOW_TRACKING_URI"
        ) from None
    return uri


def _wanted_experiment(dataset: str, project_experiment: str | None = None) -> str | None:
    """The experiment name asked for, or None: keep the experiment MLflow already has.

    `project_experiment` is the experiment of the `mlflow run` run: one other than Default
    was chosen with `mlflow run --experiment-name/--experiment-id`, so it is kept.
    """
    if chosen := _chosen_experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return chosen
    if project_experiment is not None:
        return experiment_for(dataset) if project_experiment == DEFAULT_EXPERIMENT_ID else None
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return None
    return experiment_for(dataset) if dataset else DEFAULT_EXPERIMENT


def _experiment_id(name: str) -> str:
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
    return f"[{text}](#/experiments/{experiment_id}/runs/{run_id})"


@contextlib.contextmanager
def search_parent(dataset: str, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """The search's parent run: the `mlflow run` run when there is one in the right
    experiment (no extra run), else a new run in the dataset's experiment.

    A failure inside ends the run FAILED (Ctrl-C: KILLED) with the reason in a tag. The
    experiment is passed to MLflow, never made process-wide with set_experiment, so
    a caller's (or a test's) later runs land where they would have anyway; trials find it
    through their parent.
    """
    global _project_run
    wrapper_id = os.environ.pop("MLFLOW_RUN_ID", None) or None  # children must not resume it
    client = mlflow.MlflowClient()
    wrapper = client.get_run(wrapper_id) if wrapper_id else None
    if wrapper_id:
        _project_run = wrapper_id
    here = wrapper.info.experiment_id if wrapper else None
    name = _wanted_experiment(dataset, here)
    if name is not None:
        experiment_id = _experiment_id(name)
    elif here is not None:
        experiment_id = here
    else:  # MLFLOW_EXPERIMENT_ID chose it
        experiment_id = os.environ["MLFLOW_EXPERIMENT_ID"]
    describe_experiment(experiment_id, dataset)
    adopt = wrapper is not None and experiment_id == here
    run = mlflow.start_run(
        run_id=wrapper_id if adopt else None,
        experiment_id=None if adopt else experiment_id,
        run_name=run_name,
        tags=tags,
    )
    if wrapper is not None and not adopt:
        where = client.get_experiment(experiment_id).name
        link = run_link(experiment_id, run.info.run_id, run_name)
        _tag_quietly(wrapper_id, {
            **{t: "wrapper" for t in M.ROLE_TAGS},
            M.TAG_SEARCH_RUN: run.info.run_id,
            M.TAG_NOTE: f"This `mlflow run` ran its search in experiment `{where}`: {link}. "
            "Pass `--experiment-name` to `mlflow run` to have the search in this run itself.",
        })  # fmt: skip
    with run:
        try:
            yield run
        except KeyboardInterrupt as exc:  # SIGTERM, Ctrl-C: KILLED; a full disk: FAILED
            _, reason, status, extra = stop.run_outcome(exc)
            mlflow.set_tags({M.TAG_STATUS_REASON: reason[:500]} | extra)
            mlflow.end_run(status)
            raise
        except BaseException as exc:  # the parent says why it FAILED, as a trial does
            mlflow.set_tag(M.TAG_STATUS_REASON, (str(exc) or type(exc).__name__)[:500])
            raise


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


def mark_project_run(role: str, note: str | None = None, **tags: str) -> None:
    """Say what the `mlflow run` run of this command is (report, wrapper), so the report
    and UI filters tell it from trials. No-op outside `mlflow run`; never raises."""
    run_id = project_run_id()
    if not run_id:
        return
    values = {t: role for t in M.ROLE_TAGS} | tags
    if note:
        values[M.TAG_NOTE] = note
    with _quick_http(), contextlib.suppress(Exception):
        _tag_quietly(run_id, values)


def end_project_run(reason: str, status: str = "FAILED") -> None:
    """A command that ends in a one-line error (or Ctrl-C) under `mlflow run`: its run is
    ended FAILED (KILLED) with the reason as a tag, so nothing stays RUNNING and nothing
    looks like a trial. A run that a search or trial already made its own keeps its role;
    one that never got that far becomes a `wrapper` (a `report` for the report entry).
    No-op outside `mlflow run`; never raises: the error line matters more."""
    run_id = project_run_id()
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
