"""How a run that an exception ended is recorded, the same for a trial and a search's parent:
pruned, stopped by a signal (benchmark.stop), out of disk (benchmark.train.diskspace), or failed.
"""

from __future__ import annotations

from benchmark.stop import reason, run_tags
from benchmark.train.diskspace import no_space


def run_outcome(exc: BaseException) -> tuple[str, str, str, dict[str, str]]:
    """How a trial's run that `exc` ended is recorded: (trial_state tag, reason, MLflow
    status, extra tags). Pruned: KILLED; stopped by a signal: KILLED with the signal; a full
    disk: FAILED with its one line; any other failure: FAILED with its message."""
    import optuna

    if isinstance(exc, optuna.TrialPruned):
        return "pruned", str(exc) or type(exc).__name__, "KILLED", {}
    if (full := no_space(exc)) is not None:
        return "failed", full.reason, "FAILED", {}
    if isinstance(exc, KeyboardInterrupt):
        return "failed", reason(exc), "KILLED", run_tags(exc)
    return "failed", str(exc) or type(exc).__name__, "FAILED", {}
