"""Keras callbacks a search hands to a trial's fit (the train stage owns them, so the trial
process needs nothing from the search module)."""

from __future__ import annotations

import keras
import optuna

from benchmark import metrics as M


class PruningCallback(keras.callbacks.Callback):
    """Reports the objective each epoch; the pruner decides, fit stops by exception."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.trial.report(float((logs or {})[M.OBJECTIVE]), step=epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")
