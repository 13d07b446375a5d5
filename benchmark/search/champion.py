"""The search's winner in the MLflow Model Registry, and `log_models: best`'s clean-up.

When a search ends, its best configuration's model becomes a version of the registered
model `cnn-benchmark-<dataset>` (a folder dataset: its folder's name), with a description
of its configuration and its validation and test accuracy over seeds. The alias `champion`
moves to it only when its mean validation accuracy beats the current champion's: a later,
better search takes over, a worse one leaves a version behind (to compare) but not the
alias. Ranked on validation, never on test, as the search itself is.

Of the winner's seed repeats, the model registered is the one with the best validation
accuracy (one set of weights has to be served; the description gives all seeds).
"""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.artifacts import get_artifact_repository
from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.data import parse
from benchmark.runfilter import literal
from benchmark.search import names
from benchmark.train.export import TAG_MODEL_URI

log = logging.getLogger(__name__)

ALIAS = "champion"
PREFIX = "cnn-benchmark-"
VAL_TAG = "val_accuracy_mean"  # on each version: what the next search must beat


@dataclass
class Crowned:
    """What happened in the registry: the version made, and whether it took the alias."""

    name: str
    version: str | None
    champion: bool
    message: str


def registered_name(dataset: str) -> str:
    """`cnn-benchmark-<dataset>`; folder:PATH is named after its folder."""
    family, argument = parse(dataset)
    stem = Path(argument).resolve().name if argument else dataset
    return PREFIX + re.sub(r"[^A-Za-z0-9_.-]+", "_", stem or family.rstrip(":"))


def crown_search(study, dataset: str, run_ids: Sequence[str] | None = None,
                 log_models: str = "all") -> Crowned | None:  # fmt: skip
    """The hook the search driver calls once at its end: register the study's best
    configuration (`crown`), then, under `log_models: best`, delete every other trial
    model of the study. `run_ids`: the winner's seed runs when the search says (halving's
    confirmed winner spans several trials), else the best trial's. Never fails the search:
    a registry error becomes one line.

    Its lines go to the log (the CLI shows INFO lines, as it does the data loader's), not
    to the search's progress printer, whose lines are one per trial."""
    if run_ids is None:
        best = _best_trial(study)
        if best is None:
            return None
        attrs = best.user_attrs
        run_ids = [attrs[k] for k in sorted(attrs) if k.startswith(names.RUN_ID)]
    if not run_ids:
        return None
    client = mlflow.MlflowClient()
    try:
        runs = [client.get_run(r) for r in run_ids]
        val = [_val(r) for r in runs]
        test = [r.data.metrics.get(M.TEST_ACCURACY, float("nan")) for r in runs]
        crowned = crown(dataset, run_ids, val, test, study_name=study.study_name)
        log.info(crowned.message)
        if (parent := mlflow.active_run()) is not None:
            show_on_parent(parent.info.run_id, client.get_run(_kept(runs, val)))
        if log_models == "best":
            n = delete_models(_study_run_ids(study) - {_kept(runs, val)})
            log.info("log_models=best: kept the winner's model, deleted %d other trial model(s)", n)
    except (MlflowException, OSError) as exc:  # the search itself is done and logged
        reason = (str(exc) or type(exc).__name__).splitlines()[0][:200]
        log.warning("model registry: not updated (%s)", reason)
        return None
    return crowned


def crown(
    dataset: str,
    run_ids: Sequence[str],
    val_accuracies: Sequence[float],
    test_accuracies: Sequence[float],
    *,
    study_name: str = "",
) -> Crowned:
    """Register the winner's model (its best-validation seed) as a new version of
    `cnn-benchmark-<dataset>`; move `champion` to it when its mean validation accuracy
    beats the current champion's. `run_ids` and the accuracies are per seed, in order."""
    client = mlflow.MlflowClient()
    name = registered_name(dataset)
    runs = [client.get_run(r) for r in run_ids]
    kept = runs[max(range(len(runs)), key=lambda i: val_accuracies[i])]
    uri = kept.data.tags.get(TAG_MODEL_URI)
    if not uri:
        return Crowned(name, None, False, f"model registry: the best run {kept.info.run_id} "
                       "logged no model (log_models=none): nothing registered")  # fmt: skip
    mean_val = statistics.fmean(val_accuracies)
    text = describe(kept, study_name, val_accuracies, test_accuracies)
    version = _existing_version(client, name, kept.info.run_id) or _register(
        client, name, uri, kept.info.run_id, mean_val, text
    )  # a str: the registry's numbers are ints in some stores, strings in others
    current = _champion(client, name)
    where = f"models:/{name}@{ALIAS}"
    if current is not None and str(current.version) == version:  # a resumed search's winner
        return Crowned(name, version, True, f"model registry: {name} version {version} is "
                       f"still the champion ({where})")  # fmt: skip
    better = current is None or mean_val > float(current.tags.get(VAL_TAG, "-inf"))
    if better:
        client.set_registered_model_alias(name, ALIAS, version)
        client.update_registered_model(name, description=text)
        message = f"model registry: {name} version {version} is the new champion ({where})"
    else:
        held = float(current.tags.get(VAL_TAG, "nan"))
        message = (f"model registry: {name} version {version} (val {mean_val:.4f}) does not "
                   f"beat the champion, version {current.version} (val {held:.4f}); {where} "
                   "unchanged")  # fmt: skip
    return Crowned(name, version, better, message)


def show_on_parent(parent_id: str, winner) -> None:
    """The search's parent run gets its winner's datasets as inputs (the parent's row in the
    runs table, where its trials are folded, then fills the Dataset column) and its winner's
    model as an output (`run.outputs`, and "Logged models" on the parent's page; MLflow
    3.17's Models column lists a model on the row of the trial that logged it). The parent is
    reopened by each resume and shared by workers, so each may end with the same winner:
    MLflow refuses an output twice (inputs it merges), so one already shown is left."""
    client = mlflow.MlflowClient()
    if winner.inputs and winner.inputs.dataset_inputs:
        client.log_inputs(parent_id, datasets=list(winner.inputs.dataset_inputs))
    if model_id := winner.data.tags.get(TAG_MODEL_URI, "").removeprefix("models:/"):
        outputs = client.get_run(parent_id).outputs
        shown = {o.model_id for o in (outputs.model_outputs if outputs else [])}
        if model_id not in shown:
            client.log_outputs(parent_id, [LoggedModelOutput(model_id, 0)])


def describe(run, study_name: str, val: Sequence[float], test: Sequence[float]) -> str:
    """The version's description: what it is, how it scored over seeds, its settings."""
    params = run.data.params
    fields = [f for f in TrialConfig.field_names() if f in params]
    settings = ", ".join(f"{f}={params[f]}" for f in fields)
    return (
        f"Best configuration `{run.info.run_name}` of search `{study_name}` "
        f"(weights of seed {params.get('seed', '?')}, run {run.info.run_id}).\n\n"
        f"- validation accuracy {_spread(val)} over {len(val)} seed(s)\n"
        f"- test accuracy {_spread(test)} over {len(test)} seed(s)\n\n"
        f"Configuration: {settings}\n\n"
        "Input: uint8 RGB images (N, size, size, 3), centre-cropped and resized; output: one "
        "probability column per class (`python -m benchmark predict` prepares image files)."
    )


def delete_models(run_ids: set[str]) -> int:
    """Delete the logged models of these runs (their files and their entries) and their
    `benchmark.model_uri` tags; a model a registered version points to is kept."""
    client = mlflow.MlflowClient()
    kept = _registered_model_ids(client)
    n = 0
    for run_id in sorted(run_ids):
        uri = client.get_run(run_id).data.tags.get(TAG_MODEL_URI, "")
        model_id = uri.removeprefix("models:/")
        if not model_id or model_id in kept:
            continue
        model = client.get_logged_model(model_id)
        get_artifact_repository(model.artifact_location).delete_artifacts()
        client.delete_logged_model(model_id)
        client.delete_tag(run_id, TAG_MODEL_URI)
        n += 1
    return n


def _spread(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4f}"
    each = ", ".join(f"{v:.4f}" for v in values)
    return f"{mean:.4f} ± {statistics.stdev(values):.4f} ({each})"


def _val(run) -> float:
    m = run.data.metrics
    return m.get(M.SELECTED_VAL_ACCURACY, m.get(M.VAL_ACCURACY, float("nan")))


def _kept(runs, val: Sequence[float]) -> str:
    return runs[max(range(len(runs)), key=lambda i: val[i])].info.run_id


def _best_trial(study):
    """The best completed trial that trained (a duplicate points at the trial it repeats)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    best = max(complete, key=lambda t: t.value)
    if names.DUPLICATE_OF in best.user_attrs:
        best = next(t for t in trials if t.number == best.user_attrs[names.DUPLICATE_OF])
    return best if names.run_id_attr(0) in best.user_attrs else None


def _study_run_ids(study) -> set[str]:
    return {v for t in study.get_trials(deepcopy=False)
            for k, v in t.user_attrs.items() if k.startswith(names.RUN_ID)}  # fmt: skip


def _champion(client, name: str):
    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def _existing_version(client, name: str, run_id: str) -> str | None:
    """The version already made from this run (a resumed search with the same winner)."""
    try:
        where = f"name = {literal(name)} and run_id = {literal(run_id)}"
        found = client.search_model_versions(where)
    except MlflowException:
        return None
    return str(found[0].version) if found else None


def _register(client, name: str, uri: str, run_id: str, mean_val: float, text: str) -> str:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    model_id = uri.removeprefix("models:/")
    mv = client.create_model_version(
        name, source=uri, run_id=run_id, model_id=model_id, description=text,
        tags={VAL_TAG: f"{mean_val:.6f}"},
    )  # fmt: skip
    return str(mv.version)


def _registered_model_ids(client) -> set[str]:
    try:
        versions = client.search_model_versions(f"name LIKE '{PREFIX}%'")
    except MlflowException:
        return set()
    return {v.model_id for v in versions if getattr(v, "model_id", None)}
