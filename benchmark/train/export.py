"""What a trial keeps besides its metrics: its datasets as MLflow inputs, its trained model
as an MLflow model, and its per-class results.

Two calls from the trial: `log_dataset_inputs` when its run starts (a failed trial still
says what it trained on) and `log_trial_outputs` once the test split is evaluated (the
weights logged are the weights that were tested: the best epoch's under early stopping).

`log_models` (the search's `--log-models`, passed to each trial with its job) says which
trials keep a model: `all` (default), `best` (every trial logs one and
the search deletes all but its winner's when it ends, see benchmark.search.champion: a trial
cannot know while it runs whether a later one will beat it) or `none`.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.data import Dataset
from benchmark.errors import UserError
from benchmark.models.batchnorm import as_plain_config
from benchmark.train.gpu import AugmentInStep
from benchmark.train.perclass import (
    CONFUSION_FILE,
    PER_CLASS_FILE,
    per_class_results,
    save_confusion_figure,
)
from benchmark.train.pipeline import eval_dataset

LOG_MODELS = M.LOG_MODELS
MODEL_NAME = "model"  # the logged model's name in its run
TAG_MODEL_URI = M.TAG_MODEL_URI
# MLflow 3 opens an experiment in its GenAI view unless told it holds model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
CLASSIFIER_FILE = Path(__file__).with_name("classifier.py")  # logged as models from code
KERAS_ARTIFACT = "keras_model"  # the artifacts key classifier.py loads the .keras file from
CONTEXTS = {"train": "training", "val": "validation", "test": "test"}  # split -> MLflow context


def check_log_models(mode: str) -> str:
    """`mode` if it is a `log_models` value, else the one-line error."""
    if mode not in LOG_MODELS:
        raise UserError(f"log_models should be one of {', '.join(LOG_MODELS)}, got {mode!r}")
    return mode


def log_dataset_inputs(data: Dataset) -> None:
    """The three splits as the active run's dataset inputs (the UI's Datasets column).

    Named `<dataset>-<split>`, with the suite's digest of the exact arrays (the same
    `dataset_digest` tag trials are compared by: equal digests, same images) and the archive
    or folder the images came from. The arrays are not copied: MLflow stores their shapes.
    """
    for split, context in CONTEXTS.items():
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways"
            warnings.simplefilter("ignore", UserWarning)
            ds = mlflow.data.from_numpy(
                x, targets=y, source=data.source, name=f"{data.name}-{split}", digest=data.digest
            )
        log_input_once(ds, context)
    mark_experiment(mlflow.active_run().info.experiment_id)


def log_input_once(ds, context: str) -> None:
    """`mlflow.log_input`, tried a second time when it fails. Why: MLflow's SQL store looks
    for the dataset, then inserts it; two trial processes of a fresh experiment (two workers
    on PostgreSQL) both found none and one insert failed on the unique key (measured: a
    trial failed with `UniqueViolation`). The second try finds the row the other wrote."""
    try:
        mlflow.log_input(ds, context=context)
    except mlflow.exceptions.MlflowException:
        mlflow.log_input(ds, context=context)


def mark_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training, so MLflow 3's UI opens it on its runs table."""
    client = mlflow.MlflowClient()
    try:
        if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    except mlflow.exceptions.MlflowException:
        pass  # a store that refuses experiment tags still tracks the trial


def log_trial_outputs(
    model: keras.Model, data: Dataset, cfg: TrialConfig, batch_size: int, log_models: str = "all"
) -> str | None:
    """Per-class results of the test split, and (unless log_models is `none`) the model.

    The test split is predicted in the trial's evaluation batches (`batch_size`), as the
    logged model predicts, so both give the same probabilities. Returns the logged model's
    URI (also tagged `benchmark.model_uri`), or None.
    """
    net = model.inner if isinstance(model, AugmentInStep) else model  # GPU: no augmentation
    probs = net.predict(eval_dataset(data.x_test, data.y_test, batch_size), verbose=0)
    results = per_class_results(np.asarray(probs), data.y_test, data.class_names)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / PER_CLASS_FILE).write_text(json.dumps(results, indent=1))
        save_confusion_figure(results["confusion_matrix"], data.class_names,
                              out / CONFUSION_FILE, title=cfg.run_name)  # fmt: skip
        mlflow.log_artifacts(tmp)
    if log_models == "none":
        return None
    uri = log_model(net, data.class_names, data.image_shape[0])
    mlflow.set_tag(TAG_MODEL_URI, uri)
    return uri


def signature(class_names: tuple[str, ...] | list[str], image_size: int) -> ModelSignature:
    """uint8 images (N, size, size, 3) in; one probability column per class name out."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size, 3))]),
        outputs=Schema([ColSpec("double", name) for name in class_names]),
    )


def log_model(net: keras.Model, class_names, image_size: int) -> str:
    """`net` as an MLflow pyfunc model (benchmark/train/classifier.py around the .keras
    file) in the active run; returns its `models:/` URI.

    Saved without its optimizer state (an uncompiled copy of the net with the same weights,
    rebuilt from its config: keras.models.clone_model would copy the compilation too):
    Adam's moments would triple the file and nothing that loads the model trains it further.
    Its fused batch norms are saved as Keras' own (same weights), so it loads with Keras alone.
    """
    bare = type(net).from_config(as_plain_config(net.get_config()))
    bare.set_weights(net.get_weights())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        bare.save(path)
        example = np.zeros((1, image_size, image_size, 3), dtype=np.uint8)
        with warnings.catch_warnings():  # "add type hints to predict": the signature says it
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(CLASSIFIER_FILE),
                artifacts={KERAS_ARTIFACT: str(path)},
                model_config={"class_names": list(class_names), "image_size": int(image_size)},
                signature=signature(class_names, image_size),
                input_example=example,
                pip_requirements=_requirements(),  # named: inferring them starts a process
            )
    return info.model_uri


def _requirements() -> list[str]:
    import pandas
    import tensorflow as tf

    return [f"mlflow=={mlflow.__version__}", f"tensorflow=={tf.__version__}",
            f"keras=={keras.__version__}", f"numpy=={np.__version__}",
            f"pandas=={pandas.__version__}"]  # fmt: skip
