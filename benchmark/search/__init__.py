"""The search stage: a space file -> one Optuna study -> trial runs under one MLflow parent.

    space.py     the YAML space, validated on load (no TensorFlow: the CLI's --help reads it)
    parts.py     samplers and pruners, registered by name
    storage.py   where the study lives (journal file, SQLite, PostgreSQL)
    journal.py   the journal file: a torn last record cut off, damage refused in one line
    integrity.py the study and the tracking store cross-checked when a search starts
    checkup.py   `python -m benchmark check [--repair]`
    study.py     what a study holds, read back (counts, grid coverage, dead workers' trials)
    slots.py     the trial slots: claim, run, report; N at once with --workers N
    driver.py    run_search: the parent run, the objective, resume
    parent.py    the study's one parent run: recorded, reopened, shared by workers
    halving.py   successive halving: the plan for a time budget and the next job (pure)
    rungs.py     halving on an Optuna study: plan and time spent stored, jobs queued
    warm.py      warm start: earlier searches' best configurations queued first
    summary.py   the summary, progress lines, what every parent of the study shows
    dryrun.py    every model built, none trained, the time estimated
    ablation.py  lab task 2: the best architecture with every augmentation policy
    lab.py       the lab command's stages (task 1, task 2, auto, parts), each a search
    lab_parts.py the lab's parts stages: a recipe part varied on the dataset's winner
    efficiency.py  grid vs Optuna on the same space

May import the stages before it (config, data, augment, models, the train stage), never the
report or the CLI. The names below load their module on first use, so that
`from benchmark.search.space import ...` stays free of TensorFlow.
"""

from __future__ import annotations

from benchmark.lazy import lazy_names

_WHERE = {
    "run_search": "driver",
    "threads_per_trial": "cores",
    "cores_for_slot": "cores",
    "SearchSummary": "summary",
    "dry_run": "dryrun",
    "plan_only": "rungs",
    "ablation_space": "ablation",
    "best_of_latest_search": "ablation",
    "study_name_for": "study",
    "study_parents": "study",
    "epochs_trained": "study",
    "fits_budget": "study",
    "finished_with_params": "study",
    "parent_run_name": "summary",
    "default_storage": "storage",
    "journal_path": "storage",
    "make_storage": "storage",
    "redact": "storage",
    "make_sampler": "parts",
    "make_pruner": "parts",
    "SAMPLERS": "parts",
    "PRUNERS": "parts",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
