"""The optimizer a trial trains with: its kind, its rate (scaled with the batch when asked),
its weight decay and its weight EMA, all from the TrialConfig.

Apart from trial.py so that the recipe's optimizer parts read in one place (and trial.py stays
under the module limit); trial.py re-exports `make_optimizer`.

May import: config and the train stage's schedules.
"""

from __future__ import annotations

from typing import Any

import keras

from benchmark.config import TrialConfig
from benchmark.train.schedules import learning_rate


def ema_options(cfg: TrialConfig) -> dict[str, Any]:
    """Keras' own weight EMA (`use_ema`, `ema_momentum`) when cfg.ema > 0, else nothing.

    The average is never written into the model while it trains (ema_overwrite_frequency
    None: the raw weights keep their own trajectory); ema.EmaValidation shows it to each
    epoch's validation, and fit swaps it in at its end (finalize_variable_values).
    """
    return {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema > 0 else {}


def make_optimizer(cfg: TrialConfig, steps_per_epoch: int | None = None) -> keras.Optimizer:
    """The config's optimizer; sgd means Nesterov momentum 0.9 (the CNN recipe's SGD).

    Its rate is cfg.peak_learning_rate (learning_rate, scaled by the batch under lr_scaling
    linear), under cfg.lr_schedule. Weight decay is Keras' decoupled form (w -= lr * wd * w
    each step), kept off batch-norm scales and shifts and off biases, where it only fights
    the normalisation.
    """
    lr = learning_rate(
        cfg.lr_schedule, cfg.peak_learning_rate, cfg.epochs, steps_per_epoch, cfg.warmup_epochs
    )
    extra = {} if cfg.weight_decay is None else {"weight_decay": cfg.weight_decay}
    extra |= ema_options(cfg)
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **extra)
    else:
        opt = keras.optimizers.get(
            {"class_name": cfg.optimizer, "config": {"learning_rate": lr, **extra}}
        )
    if opt.weight_decay:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt
