"""The train stage: one configuration trained, evaluated and logged as one MLflow run.

    trial.py      run_trial: build, fit, evaluate, log (the heart: read this first)
    pipeline.py   tf.data input pipelines from uint8 arrays
    schedules.py  learning-rate schedules (one formula, a Keras schedule)
    optim.py      the optimizer: kind, rate (scaled with the batch), weight decay, weight EMA
    ema.py        each epoch's validation scores the EMA weights (the weights tested)
    tta.py        test-time augmentation: flip, flip_translate
    callbacks.py  Optuna pruning as a Keras callback
    gpu.py        what changes on a GPU (augmentation in the step, mixed precision, metrics)
    isolate.py    a trial in its own process (flat memory), warmed up while another trains
    runtime.py    device, versions, threads; where runs go in MLflow
    plots.py      the learning-curve figure a trial logs

May import: config, data, augment, models (the stages before it), never search or report.
The names below load their module on first use: a trial process imports isolate.py before
TensorFlow, so this package must not import it.
"""

from __future__ import annotations

from benchmark.lazy import lazy_names

_WHERE = {
    "run_trial": "trial",
    "load_for": "trial",
    "TrialResult": "trial",
    "TrialFailed": "trial",
    "compiled_model": "trial",
    "train_dataset": "pipeline",
    "eval_dataset": "pipeline",
    "run_isolated": "isolate",
    "TrialJob": "isolate",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
