"""The lab command: the university lab's tasks as named stages, each one search into one store.

    task1  the dataset's default space (architectures x {none, the lab's policy}) on every seed
    task2  task 1's best configuration (highest mean validation accuracy over the seeds) with
           shift + grayscale added to its policy, on the same seeds
    auto   the dataset's `<dataset>-auto.yaml` halving search (`--auto true`)
    parts  one recipe part varied on the winner (auto's, else task 1's), one stage a part
           (`--parts ema,label_smoothing,batch_size,precision`; lab_parts.py)

Composition, not a second search engine: a stage is `run_search` with a study name of its
own (`lab-<task>-...`), so the studies are the lab's state. Running the lab again skips the
stages whose study is complete and resumes the one that was interrupted; a dataset whose data
cannot be had is skipped in one line. Each stage's parent and trial runs carry the tag
`lab_task`, which is how the report finds them.

May import the search stage's modules and the stages before it, never the report or the CLI.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from benchmark import metrics as M
from benchmark.choices import LAB_DATASETS, WITH_SHIFT_GRAYSCALE
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search import lab_parts
from benchmark.search.ablation import ablation_space
from benchmark.search.space import SPACES_DIR, SearchSpace, load_space
from benchmark.search.summary import hms

TASK1, TASK2, AUTO, PARTS = "task1", "task2", "auto", "parts"
ROLES = {TASK1: "search", TASK2: "ablation", AUTO: "search", PARTS: "ablation"}


@dataclass(frozen=True)
class LabSettings:
    """The lab command's options, checked once."""

    datasets: tuple[str, ...] = LAB_DATASETS
    data_dir: str | None = None
    seeds: int = 3
    epochs: int | None = None
    max_train_samples: int | None = None
    auto: bool = False
    spaces: Path = SPACES_DIR  # where `<dataset>.yaml` (task 1) and `<dataset>-auto.yaml` are
    # Each auto search's time budget times this: the spaces' budgets were sized on a 2-core
    # AVX-512 CPU, and one that trains 2x slower (AVX2 only) gets a ladder of 2 candidates.
    budget_factor: float = 1.0
    parts: tuple[str, ...] = ()  # recipe parts varied on the winner, a stage each

    def __post_init__(self) -> None:
        lab_parts.check_parts(self.parts)
        unknown = [d for d in self.datasets if d not in LAB_DATASETS]
        if unknown or not self.datasets:
            raise UserError(f"lab datasets are {', '.join(LAB_DATASETS)}; got "
                            f"{','.join(self.datasets) or 'none'}")  # fmt: skip
        if self.seeds < 2:
            raise UserError(f"the lab needs 2 or more seeds for its intervals; got {self.seeds}")
        if not self.budget_factor > 0:
            raise UserError(f"--budget-factor must be above 0; got {self.budget_factor:g}")

    @property
    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in (("epochs", self.epochs),
                                  ("max_train_samples", self.max_train_samples)) if v is not None}

    @property
    def tasks(self) -> tuple[str, ...]:
        return (TASK1, TASK2, AUTO) if self.auto else (TASK1, TASK2)


@dataclass
class Stage:
    """One task on one dataset. Task 2's space is known once task 1 is complete."""

    dataset: str
    task: str
    space: SearchSpace | None = None
    study_name: str | None = None
    trainings: int = 0  # planned (auto: the plan's, once it is made)
    left: int | None = None  # of those, still to train when the lab began (None: all)
    prices: dict[str, float] = field(default_factory=dict)  # task 1: run name -> its seconds
    estimate_s: float = 0.0
    done: bool = False  # complete before this run of the lab began
    vary: str | None = None  # a parts stage: the setting it varies
    winner_runs: list[str] | None = None  # a parts stage: the runs of the winner it varies
    baseline: list[str] = field(default_factory=list)  # of those, the ones not retrained

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.task}" + (f" {self.vary}" if self.vary else "")


@dataclass
class LabOutcome:
    stages: list[Stage] = field(default_factory=list)
    trained: int = 0  # stages that trained something in this run
    wall_s: float = 0.0
    estimate_s: float = 0.0  # of the stages that were left when it began


# --- planning -----------------------------------------------------------------------------


def check_data(settings: LabSettings, printer: Callable[[str], None]) -> tuple[list, dict]:
    """The datasets whose data can be had (read or downloaded, then cached) and, for the
    others, why not: one line each, and the rest of the lab goes on."""
    from benchmark.train.trial import load_for

    ready, skipped = [], {}
    for dataset in settings.datasets:
        cfg = TrialConfig(dataset=dataset, max_train_samples=settings.max_train_samples)
        try:
            load_for(cfg, settings.data_dir)
            ready.append(dataset)
        except UserError as exc:
            skipped[dataset] = str(exc)
            printer(f"{dataset}: skipped: {exc}")
    return ready, skipped


def plan_stages(settings: LabSettings, datasets: list[str]) -> list[Stage]:
    """Every stage of every dataset in order; task 1's space and study named, task 2's
    too when task 1 is complete, auto's when the dataset ships an auto space."""
    stages = []
    for dataset in datasets:
        for task in settings.tasks:
            stage = Stage(dataset, task)
            if task == TASK1:
                stage.space = load_space(Path(settings.spaces) / f"{dataset}.yaml")
            elif task == AUTO:
                path = Path(settings.spaces) / f"{dataset}-auto.yaml"
                if not path.is_file():
                    continue  # no auto space for this dataset (cifar100)
                stage.space = scaled_budget(load_space(path), settings.budget_factor)
            else:
                stage.space = task2_space(stages[-1], settings)
            if stage.space is not None:
                stage.study_name = study_name(stage, settings)
            stages.append(stage)
        for part in settings.parts:
            stages.append(Stage(dataset, PARTS, vary=part))
            resolve_part(stages[-1], stages, settings)
    for stage in stages:
        stage.done = is_complete(stage)
    return stages


def scaled_budget(space: SearchSpace, factor: float) -> SearchSpace:
    """The auto space with its time budget times `factor` (the plan fits its rungs to it)."""
    if factor == 1:
        return space
    minutes = float(space.halving.budget_minutes or 0) * factor
    return dataclasses.replace(space, halving=dataclasses.replace(space.halving,
                                                                  budget_minutes=minutes))


def study_name(stage: Stage, settings: LabSettings) -> str:
    """`lab-<task>-` + the name `search` would give the same space, overrides and seeds; an
    auto search given another budget is another study (its plan, fitted to the budget, is
    stored with the study)."""
    from benchmark.search.study import study_name_for

    given = settings.overrides | {"seeds": settings.seeds}
    if stage.task == AUTO and settings.budget_factor != 1:
        given["budget"] = f"{stage.space.halving.budget_minutes:g}"
    return f"lab-{stage.task}-{study_name_for(stage.space, stage.dataset, given)}"


def task2_space(task1: Stage, settings: LabSettings) -> SearchSpace | None:
    """Task 1's best configuration, chosen on mean validation accuracy over its seeds, with
    shift + grayscale added to its policy; None until task 1 is complete."""
    from benchmark.augment import with_shift_grayscale

    if not is_complete(task1):
        return None
    best = lab_parts.best_grid_trial(_load_study(task1.study_name)[0])
    fixed = {**task1.space.fixed, **{k: v for k, v in best.params.items() if k != "augmentation"}}
    policy = best.params.get("augmentation", task1.space.fixed.get("augmentation", "none"))
    space = ablation_space(fixed, settings.seeds, [with_shift_grayscale(policy)])
    return dataclasses.replace(space, path=f"{task1.dataset}-task2.yaml")


def resolve_part(stage: Stage, stages: list[Stage], settings: LabSettings) -> None:
    """A parts stage's space, study and winner once the winner it varies is known: the
    dataset's auto search's once it has nothing left to train, else task 1's once complete."""
    base = _winner_stage(stages, stage)
    if base.study_name is None or (base.task == TASK1 and not is_complete(base)):
        return
    runs = lab_parts.winner(_load_study(base.study_name)[0], halving=base.task == AUTO)
    if runs:
        stage.winner_runs, stage.baseline = runs, lab_parts.baseline_runs(runs, settings.seeds)
        stage.space = lab_parts.part_space(runs, stage.vary, settings.seeds, stage.dataset,
                                           reuse=bool(stage.baseline))  # fmt: skip
        stage.study_name = study_name(stage, settings)


def _winner_stage(stages: list[Stage], stage: Stage) -> Stage:
    own = {s.task: s for s in stages if s.dataset == stage.dataset}
    return own.get(AUTO) or own[TASK1]


def task2_price(task1: Stage, task2: Stage, settings: LabSettings) -> float | None:
    """Task 2's seconds once its configuration is known: the price task 1's estimate gave the
    same net with its base policy (shift + grayscale adds little to an epoch). Why: priced
    before task 1 ended, as the mean augmented configuration, task 2 came out 30% short when
    a dear net won. None when that configuration was not priced."""
    if task2.space is None or task2.space.strategy != "grid":
        return None
    overrides = {k: v for k, v in settings.overrides.items() if v is not None}
    cfg = task2.space.config(task2.space.grid_points()[0], dataset=task2.dataset, **overrides)
    base = {v: k for k, v in WITH_SHIFT_GRAYSCALE.items()}.get(cfg.augmentation)
    return None if base is None else task1.prices.get(cfg.replace(augmentation=base).run_name)


def is_complete(stage: Stage) -> bool:
    """A grid stage whose study holds a finished trial for every point, none running; an auto
    search whose own plan has nothing left to train (asked as the search asks it)."""
    from benchmark.search.study import already_done

    study, store = _load_study(stage.study_name) if stage.study_name else (None, None)
    if study is None or stage.space is None or stage.space.strategy not in ("grid", "halving"):
        return False
    if stage.space.strategy == "halving":
        from benchmark.search.rungs import finished  # the probe's TensorFlow: only here
        return finished(study) is not None
    return already_done(study, store, stage.space, len(stage.space.grid_points()), None) is not None


def _load_study(name: str) -> tuple[optuna.Study | None, Any]:
    """The stage's study where `search` keeps it by default (beside the tracking store)."""
    from benchmark.search.storage import default_storage, make_storage

    store = make_storage(default_storage(name))
    try:
        return optuna.load_study(study_name=name, storage=store), store
    except KeyError:  # not created yet
        return None, store


# --- estimating ---------------------------------------------------------------------------


def estimate_stages(stages: list[Stage], settings: LabSettings,
                    printer: Callable[[str], None]) -> None:  # fmt: skip
    """Each stage gets its trainings and, when it is left to run, its estimated seconds: tasks
    1 and 2 from the dry run's timed epochs, auto as what is left of its time budget."""
    for stage in stages:
        if stage.task == TASK1:
            _estimate_tasks(stage, _next(stages, stage), settings, printer)
        elif stage.task == AUTO:
            budget_s = 60.0 * float(stage.space.halving.budget_minutes or 0)
            stage.estimate_s = 0.0 if stage.done else max(budget_s - _spent_s(stage), 0.0)
        elif stage.task == PARTS:
            _estimate_part(stage, settings)


def _estimate_part(stage: Stage, settings: LabSettings) -> None:
    """Its trainings at the winner's measured training time; before the winner is known, its
    default values on every seed, unpriced."""
    if stage.space is None:
        stage.trainings = lab_parts.unpriced_trainings(stage.vary, settings.seeds)
        return
    stage.trainings = len(stage.space.grid_points()) * stage.space.seeds
    stage.left = None if stage.done else round(stage.trainings * _left(stage))
    stage.estimate_s = lab_parts.part_seconds(stage.winner_runs, stage.space)
    stage.estimate_s *= 0.0 if stage.done else stage.left / max(stage.trainings, 1)


def _spent_s(stage: Stage) -> float:
    """Seconds of its budget a halving stage's earlier commands spent (0 for a new one)."""
    from benchmark.search.names import SPENT

    study, _ = _load_study(stage.study_name) if stage.study_name else (None, None)
    return float(study.user_attrs.get(SPENT, 0.0)) if study is not None else 0.0


def _estimate_tasks(task1: Stage, task2: Stage, settings: LabSettings,
                    printer: Callable[[str], None]) -> None:  # fmt: skip
    """Task 1: its configurations priced by the dry run (what is left of them). Task 2: one of
    task 1's augmented configurations on every seed (its own is not chosen yet)."""
    from benchmark.search.dryrun import estimate

    task1.trainings = len(task1.space.grid_points()) * settings.seeds
    task2.trainings = settings.seeds
    if task1.done and task2.done:
        return
    printer(f"{task1.dataset}: timing two epochs of its cheapest and dearest nets ...")
    est = estimate(task1.space, dataset=task1.dataset, data_dir=settings.data_dir,
                   overrides=settings.overrides, seeds=settings.seeds)  # fmt: skip
    share = 0.0 if task1.done else _left(task1)
    task1.left, task1.estimate_s = round(task1.trainings * share), est.total_s * share
    task1.prices = {r[0].run_name: r[3] for r in est.rows if r[1] is not None}
    priced = [r[3] for r in est.rows if r[1] is not None and r[0].augmentation != "none"]
    task2.estimate_s = statistics.fmean(priced or [est.per_training_s * settings.seeds])


def _left(stage: Stage) -> float:
    """The share of a grid stage's points its study has not finished (an interrupted stage
    resumes with the rest)."""
    from benchmark.search.study import grid_left

    study, _ = _load_study(stage.study_name)
    if study is None:
        return 1.0
    points = grid_left(study, stage.space)
    return (points["unclaimed"] + points["running"]) / max(len(stage.space.grid_points()), 1)


def _next(stages: list[Stage], stage: Stage) -> Stage:
    return stages[stages.index(stage) + 1]


def plan_lines(stages: list[Stage], skipped: dict[str, str]) -> list[str]:
    """What `lab --dry-run` prints: each stage, its trainings and minutes, then a total."""
    w = max([20] + [len(s.name) for s in stages])  # `cifar10 parts label_smoothing`
    lines = [f"{'stage':{w}} {'trainings':>9} {'est. min':>9}  state"]
    for s in stages:
        trainings = str(s.trainings) if s.trainings else "budget"
        if s.left is not None and 0 < s.left < s.trainings:  # an interrupted stage
            trainings = f"{s.left} of {s.trainings}"
        state = "complete: skipped" if s.done else "to run"
        state += "; priced once its winner is known" if s.task == PARTS and not s.space else ""
        lines.append(f"{s.name:{w}} {trainings:>9} {s.estimate_s / 60:>9.1f}  {state}")
    lines += [f"{d + ' (all)':{w}} {'-':>9} {'-':>9}  skipped: no data" for d in skipped]
    left = [s for s in stages if not s.done]
    total = sum(s.estimate_s for s in left)
    trainings = sum(s.trainings if s.left is None else s.left for s in left)
    lines.append(f"total: {len(left)} of {len(stages)} stage(s) to run, {trainings} trainings "
                 f"planned, estimated {hms(total)}")  # fmt: skip
    return lines


# --- running ------------------------------------------------------------------------------


def run_stages(stages: list[Stage], settings: LabSettings, run: Callable[..., Any],
               printer: Callable[[str], None]) -> LabOutcome:  # fmt: skip
    """Each stage in order through `run` (run_search with the CLI's tracking and parent
    description bound), one progress line per finished stage with the lab's ETA."""
    outcome = LabOutcome(stages=stages, estimate_s=sum(s.estimate_s for s in stages if not s.done))
    started, spent_est = time.time(), 0.0
    for i, stage in enumerate(stages, 1):
        if stage.task == TASK2 and stage.space is None:  # task 1 has just finished
            stage.space = task2_space(stages[i - 2], settings)
            stage.study_name = study_name(stage, settings)
            stage.estimate_s = task2_price(stages[i - 2], stage, settings) or stage.estimate_s
        if stage.task == PARTS and not _part_ready(stage, stages, settings, printer, i):
            continue
        t0 = time.time()
        fresh = not stage.done and _ran(run(
            stage.space, dataset=stage.dataset, data_dir=settings.data_dir,
            study_name=stage.study_name, seeds=settings.seeds, overrides=settings.overrides,
            role=ROLES[stage.task],
            tags={M.TAG_LAB_TASK: stage.task, **lab_parts.stage_tags(stage.vary, stage.baseline)}))
        took = time.time() - t0
        outcome.trained += fresh
        spent_est += stage.estimate_s if fresh else 0.0
        pace = (time.time() - started) / spent_est if spent_est > 60 else 1.0
        left = sum(s.estimate_s for s in stages[i:] if not s.done) * pace
        what = (f"done in {hms(took)} (estimated {hms(stage.estimate_s)})" if fresh
                else "already complete, nothing trained")  # fmt: skip
        printer(f"[lab {i}/{len(stages)}] {stage.name}: {what}; lab ETA {hms(left)}")
    outcome.wall_s = time.time() - started
    return outcome


def _part_ready(stage: Stage, stages: list[Stage], settings: LabSettings,
                printer: Callable[[str], None], i: int) -> bool:  # fmt: skip
    """A parts stage's winner, found now that the stages before it ran (one line says what
    it varies, or why it is skipped: an auto search stopped before it had a winner)."""
    if stage.space is None:
        resolve_part(stage, stages, settings)
        if stage.space is not None:
            _estimate_part(stage, settings)
    if stage.space is None:
        printer(f"[lab {i}/{len(stages)}] {stage.name}: skipped: its winner is not known yet "
                f"({_winner_stage(stages, stage).name} has not finished)")  # fmt: skip
        return False
    if not stage.done:
        printer(f"{stage.name}: "
                f"{lab_parts.describe(stage.winner_runs, stage.space, stage.baseline)}")
    return True


def _ran(summary: Any) -> bool:
    """Whether the search trained: a halving study found complete says "already complete"
    (grid stages known complete are not run at all)."""
    return not (summary.stopped_reason or "").startswith("already complete")
