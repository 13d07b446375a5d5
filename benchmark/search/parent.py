"""One search, one parent run: the study records which MLflow run is its parent, so a resumed
search reopens it and every worker, here or on another machine, hangs its trials under it.

Two commands that start a fresh study at the same moment would each make a parent. Optuna's
storages have no compare-and-set, so the first writer wins this way: a command that finds no
parent makes its run, reads the study's record once more just before writing its own (one
storage round trip apart), waits `SETTLE_S`, and reads it again. Whatever the record says
then is the parent for both: the command that lost deletes its run and reopens the winner.
Two writes can only both stand if one command stalls for `SETTLE_S` between its read and its
write; the report still shows the study as one row (benchmark.report.load.one_per_study).

Stores from before this module hold several parents per resumed study: the oldest is the one
reopened (and recorded), so such a study gets no further parents.
May import: benchmark.metrics, benchmark.search.study.
"""

from __future__ import annotations

import time

import mlflow
import optuna
from mlflow.exceptions import MlflowException

from benchmark import metrics as M
from benchmark.search.study import other_worker, study_parents

PARENT_ATTR = "mlflow_parent_run"  # study user attr: the run id of the study's parent run
SETTLE_S = 0.5  # how long a command that offered its run waits before it reads who won


class StudyParent:
    """The search stage's side of `Tracking.search_parent` (benchmark.train.tracking's
    ParentClaim): the study's record of its parent run, read and claimed."""

    def __init__(self, study: optuna.Study, role: str) -> None:
        self.study, self.role = study, role

    def recorded(self, experiment_id: str) -> str | None:
        """The recorded parent when it is still a live run of this experiment; else, in a
        store from before the record, the study's oldest parent there (then recorded)."""
        if run_id := self._usable(self.study.user_attrs.get(PARENT_ATTR), experiment_id):
            return run_id
        older = [p for p in study_parents(self.study.study_name)
                 if p.info.experiment_id == experiment_id
                 and p.data.tags.get(M.TAG_ROLE) == self.role]  # fmt: skip
        if not older:
            return None
        self.study.set_user_attr(PARENT_ATTR, older[0].info.run_id)
        return older[0].info.run_id

    def claim(self, run_id: str) -> str:
        """Offer `run_id` as the parent; the run the study holds once the writes settle."""
        experiment_id = mlflow.MlflowClient().get_run(run_id).info.experiment_id
        if first := self._usable(self.study.user_attrs.get(PARENT_ATTR), experiment_id):
            return first  # recorded while this run was being made
        self.study.set_user_attr(PARENT_ATTR, run_id)
        time.sleep(SETTLE_S)
        return self.study.user_attrs.get(PARENT_ATTR) or run_id

    def handover(self) -> str | None:
        return other_worker(self.study)

    @staticmethod
    def _usable(run_id: str | None, experiment_id: str) -> str | None:
        """`run_id` when it names an undeleted run of this experiment in this store (a study
        may outlive its runs, or be tracked into another store or experiment later)."""
        if not run_id:
            return None
        try:
            info = mlflow.MlflowClient().get_run(run_id).info
        except MlflowException:
            return None
        live = info.lifecycle_stage == "active" and info.experiment_id == experiment_id
        return run_id if live else None
