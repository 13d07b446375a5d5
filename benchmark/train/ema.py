"""Weight EMA seen by validation: the weights a trial tests are the weights it selects by.

With `ema` > 0 the optimizer keeps an exponential moving average of the trainable weights
(Keras' `use_ema`) and `fit` swaps it into the model when it ends
(`finalize_variable_values`), so the test scores the average. Left at that, two things would
disagree with the test:

- each epoch's `val_accuracy` would score the raw weights, so the search, the pruner and
  early stopping would rank weights that are never tested;
- early stopping's `restore_best_weights` runs after that swap (`on_train_end`) and would put
  back the raw weights of its best epoch, so the test would score no average at all.

`EmaValidation` swaps the average in when an epoch's validation begins and the raw weights
back when the epoch ends. Placed last among fit's callbacks, it lets every callback before it
(EpochLogger, early stopping's snapshot, the pruner) see the averaged weights and their
scores: early stopping then restores the average of its best epoch, and without early
stopping the last epoch's validated average is the one the test scores.

Batch-norm statistics are not averaged (Keras averages trainable variables only): the
averaged weights run with the raw weights' moving means and variances. At momentum 0.999 the
average spans about 1,000 steps, a few epochs of the subsets here.

May import: the train stage's own modules (none needed).
"""

from __future__ import annotations

import keras
import numpy as np


def averages(optimizer: keras.Optimizer) -> list:
    """The optimizer's moving averages, one per trainable variable (None where it keeps
    none); a loss-scale optimizer's (mixed_float16) are its inner optimizer's."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not getattr(inner, "use_ema", False):
        raise ValueError("EmaValidation needs an optimizer built with use_ema=True")
    return list(inner._model_variables_moving_average)  # Keras keeps no public name for them


class EmaValidation(keras.callbacks.Callback):
    """During fit, each epoch's validation scores the EMA weights (see the module's note)."""

    def __init__(self) -> None:
        super().__init__()
        self._fitting = False
        self._raw: list[np.ndarray] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._fitting = True

    def on_train_end(self, logs: dict | None = None) -> None:
        self._fitting = False

    def on_test_begin(self, logs: dict | None = None) -> None:
        if not self._fitting or self._raw is not None:  # a test outside fit: leave it be
            return
        weights = self.model.trainable_weights
        self._raw = [keras.ops.convert_to_numpy(w) for w in weights]
        for var, average in zip(weights, averages(self.model.optimizer), strict=True):
            if average is not None:
                var.assign(average)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._raw is None:
            return
        for var, raw in zip(self.model.trainable_weights, self._raw, strict=True):
            var.assign(raw)
        self._raw = None
