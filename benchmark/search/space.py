"""Search spaces: `search_spaces/<dataset>.yaml`, validated on load.

A space names the dimensions searched (grid values and/or Optuna ranges), the training
settings every trial shares, the Optuna sampler and pruner, and seed repeats. Every key is
checked: a typo fails with the allowed names instead of being ignored.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark.choices import KERAS_PREFIX, problem
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search.parts import PRUNERS, SAMPLERS, pruner_options
from benchmark.search.survivors import DEFAULT as DEFAULT_SURVIVORS
from benchmark.search.survivors import SURVIVORS

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
STRATEGIES = ("grid", "optuna", "halving")
TOP_KEYS = ("description", "dataset", "strategy", "fixed", "space", "seeds", "optuna", "budget",
            "halving")  # fmt: skip
HALVING_KEYS = ("budget_minutes", "eta", "min_epochs", "confirm_top", "warm_start", "survivors")
HALVING_SEEDS = 3  # strategy halving: the finalists' seeds when the space names none
DIM_KEYS = ("values", "low", "high", "log", "step")
OPTUNA_KEYS = ("n_trials", "timeout", "max_epochs", "sampler", "startup_trials", "pruner")
NOT_SEARCHABLE = ("dataset", "seed", "max_train_samples", "epochs")


@dataclass(frozen=True)
class Dimension:
    name: str
    values: tuple | None = None  # grid points; Optuna: categorical over them unless low/high
    low: float | int | None = None  # Optuna range (int when low, high and step are ints)
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None

    def suggest(self, trial: Any) -> Any:
        """The only place a dimension meets `trial.suggest_*` (define-by-run)."""
        if self.low is None:
            return trial.suggest_categorical(self.name, list(self.values))
        if all(isinstance(v, int) for v in (self.low, self.high, self.step or 1)):
            return trial.suggest_int(
                self.name, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class HalvingSettings:
    """A halving search's settings, the space's `halving:` keys: their defaults are declared
    here once (the plan, the dry run and the report read them from here)."""

    budget_minutes: float | None = None  # the wall-clock budget, confirmation included
    eta: int = 3  # each rung keeps 1/eta of the one below
    min_epochs: int | None = None  # the shortest rung; None: epochs / eta^2
    confirm_top: int = 2  # finalists trained on every seed
    warm_start: bool = True  # the store's best earlier configurations join rung 0
    survivors: str = DEFAULT_SURVIVORS  # benchmark.search.survivors: who goes on
    given: tuple[str, ...] = ()  # the keys the file wrote

    def digest_part(self) -> list[Any]:
        """What of these decides which trials run, as the study's digest reads it: the keys
        the file wrote only, so that a default declared later renames no study."""
        out = [getattr(self, k) if k in self.given else None
               for k in ("eta", "min_epochs", "confirm_top")]  # fmt: skip
        return out + ([self.survivors] if "survivors" in self.given else [])


@dataclass(frozen=True)
class SearchSpace:
    path: str
    text: str  # the file as written, logged as an artifact
    dataset: str | None
    strategy: str
    fixed: dict[str, Any]
    dimensions: tuple[Dimension, ...]
    seeds: int = 1
    n_trials: int | None = None
    timeout: float | None = None
    max_epochs: int | None = None  # epoch budget: no trial starts that could overrun it
    sampler: str = "tpe"
    startup_trials: int | None = None  # TPE's random trials before it models (Optuna: 10)
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    budget: str = ""  # free text for reports: what the defaults were sized for
    halving: HalvingSettings = field(default_factory=HalvingSettings)

    @property
    def digest(self) -> str:
        """Changes when anything that decides which trials run changes (study identity)."""
        key = json.dumps(
            [self.strategy, self.fixed, [d.__dict__ for d in self.dimensions], self.seeds]
            + (self.halving.digest_part() if self.strategy == "halving" else []),
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(key.encode()).hexdigest()[:8]

    def grid(self) -> dict[str, list]:
        """Optuna GridSampler's search space; every dimension needs `values`."""
        missing = [d.name for d in self.dimensions if d.values is None]
        if missing:
            raise UserError(
                f"{self.path}: space.{missing[0]} has no `values`; the grid strategy needs "
                "them (low/high ranges are for strategy optuna)"
            )
        return {d.name: list(d.values) for d in self.dimensions}

    def grid_points(self) -> list[dict[str, Any]]:
        g = self.grid()
        return [dict(zip(g, combo, strict=True)) for combo in itertools.product(*g.values())]

    def config(self, params: Mapping[str, Any], **overrides: Any) -> TrialConfig:
        """fixed settings + one point of the space (+ CLI overrides) -> the trial's config."""
        return TrialConfig.from_options(**{**self.fixed, **params, **overrides})


def space_path(dataset: str, space: str | None = None) -> Path:
    if space:
        return Path(space)
    from benchmark.data import source_name  # lazy: the loaders import numpy and Pillow

    stem = source_name(dataset)  # folder:PATH -> folder
    return SPACES_DIR / f"{stem}.yaml"


def load_space(path: str | Path, strategy: str | None = None) -> SearchSpace:
    """Read and validate a space file; every error names the key and what is allowed."""
    path = Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in SPACES_DIR.glob("*.yaml")))
        raise UserError(f"search space {str(path)!r} not found; shipped spaces: {known}")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)  # safe_load: tags that build Python objects are refused
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")

    def bad(msg: str) -> UserError:
        return UserError(f"{path}: {msg}")

    _check_keys(raw, TOP_KEYS, "", bad)
    strategy = strategy or raw.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise bad(f"strategy {strategy!r} is not allowed; allowed: {', '.join(STRATEGIES)}")

    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise bad("`fixed` should be a mapping of training settings")
    _check_keys(fixed, TrialConfig.field_names(), "fixed.", bad)

    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise bad("`space` should be a non-empty mapping of dimension -> {values: [...]}")
    searchable = [f for f in TrialConfig.field_names() if f not in NOT_SEARCHABLE]
    dims = [_dimension(name, spec, fixed, searchable, bad) for name, spec in space.items()]

    opt, sampler, pruner = _optuna_options(raw, strategy, bad)
    seeds = raw.get("seeds", HALVING_SEEDS if strategy == "halving" else 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise bad(f"`seeds` should be a positive integer; got {seeds!r}")

    result = SearchSpace(
        path=str(path),
        text=text,
        dataset=raw.get("dataset"),
        strategy=strategy,
        fixed=dict(fixed),
        dimensions=tuple(dims),
        seeds=seeds,
        n_trials=opt.get("n_trials"),
        timeout=opt.get("timeout"),
        max_epochs=opt.get("max_epochs"),
        sampler=sampler,
        startup_trials=opt.get("startup_trials"),
        pruner=dict(pruner),
        budget=str(raw.get("budget", "")),
        halving=_halving_options(raw.get("halving") or {}, bad),
    )
    _check_configs(result, bad)
    return result


def _dimension(name: str, spec: Any, fixed: Mapping, searchable: list[str], bad) -> Dimension:
    """One `space:` entry, checked: a searchable setting, in one place, values or a range."""
    if name not in searchable:
        raise bad(f"space.{name} is not a searchable setting; allowed: {', '.join(searchable)}")
    if name in fixed:
        raise bad(f"space.{name} is also in `fixed`; keep it in one place")
    if not isinstance(spec, dict):
        raise bad(f"space.{name} should be a mapping with keys {', '.join(DIM_KEYS)}")
    _check_keys(spec, DIM_KEYS, f"space.{name}.", bad)
    values = spec.get("values")
    if values is not None and (not isinstance(values, list) or not values):
        raise bad(f"space.{name}.values should be a non-empty list; got {values!r}")
    if values is None and (spec.get("low") is None or spec.get("high") is None):
        raise bad(f"space.{name} needs `values` or both `low` and `high`")
    for key in ("low", "high", "step"):
        v = spec.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise bad(f"space.{name}.{key} should be a number; got {v!r}")
    if spec.get("low") is not None and spec["low"] >= spec["high"]:
        raise bad(f"space.{name}: low ({spec['low']}) should be below high ({spec['high']})")
    return Dimension(
        name=name,
        values=tuple(values) if values is not None else None,
        low=spec.get("low"),
        high=spec.get("high"),
        log=bool(spec.get("log", False)),
        step=spec.get("step"),
    )


def _optuna_options(raw: Mapping, strategy: str, bad) -> tuple[dict, str, dict]:
    """The `optuna:` mapping checked; the sampler (a grid space under halving enumerates
    its points) and the pruner with its options."""
    opt = raw.get("optuna") or {}
    _check_keys(opt, OPTUNA_KEYS, "optuna.", bad)
    sampler = opt.get("sampler", "tpe")
    if strategy == "halving" and raw.get("strategy", "grid") == "grid":
        sampler = "grid"  # a grid space under halving: rung 0 enumerates its points
    if sampler not in SAMPLERS:
        raise bad(f"optuna.sampler {sampler!r} is not allowed; allowed: {SAMPLERS.known()}")
    pruner = opt.get("pruner") or {"type": "median"}
    if not isinstance(pruner, dict):
        raise bad("optuna.pruner should be a mapping with `type`")
    if pruner.get("type", "median") not in PRUNERS:
        raise bad(
            f"optuna.pruner.type {pruner.get('type')!r} is not allowed; allowed: {PRUNERS.known()}"
        )
    _check_keys(pruner, ("type", *pruner_options(pruner.get("type", "median"))),
                "optuna.pruner.", bad)  # fmt: skip
    for key, least in (("n_trials", 1), ("max_epochs", 1), ("startup_trials", 0)):
        v = opt.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            kind = "a positive" if least else "a non-negative"
            raise bad(f"optuna.{key} should be {kind} integer; got {v!r}")
    if opt.get("startup_trials") is not None and sampler != "tpe":
        raise bad(f"optuna.startup_trials is a TPE setting; sampler is {sampler!r}")
    return opt, sampler, pruner


def _halving_options(opts: Any, bad) -> HalvingSettings:
    """The `halving:` mapping: budget_minutes (> 0), eta (>= 2), min_epochs and confirm_top
    (>= 1), warm_start (true/false), survivors (a registered rule); absent keys take
    HalvingSettings' defaults."""
    if not isinstance(opts, dict):
        raise bad(f"`halving` should be a mapping with keys {', '.join(HALVING_KEYS)}")
    _check_keys(opts, HALVING_KEYS, "halving.", bad)
    for key, least in (("eta", 2), ("min_epochs", 1), ("confirm_top", 1)):
        v = opts.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            raise bad(f"halving.{key} should be an integer >= {least}; got {v!r}")
    minutes = opts.get("budget_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int | float)
                                or minutes <= 0):  # fmt: skip
        raise bad(f"halving.budget_minutes should be a positive number; got {minutes!r}")
    if not isinstance(opts.get("warm_start", True), bool):
        raise bad(f"halving.warm_start should be true or false; got {opts['warm_start']!r}")
    if opts.get("survivors", DEFAULT_SURVIVORS) not in SURVIVORS:
        raise bad(f"halving.survivors should be one of {SURVIVORS.known()}; "
                  f"got {opts['survivors']!r}")  # fmt: skip
    given = {k: v for k, v in opts.items() if v is not None}
    return HalvingSettings(**given, given=tuple(sorted(given)))


def _check_keys(d: Mapping, allowed, where: str, bad) -> None:
    for key in d:
        if key not in allowed:
            raise bad(f"unknown key {where}{key}; allowed: {', '.join(allowed)}")


def _model_problem(model: str) -> str | None:
    """Why `model` is no model (keras:NAME included: its NAME is looked up), else None; so
    that an unknown architecture is not reported as one that cannot fit the images."""
    from benchmark.models.applications import constructor

    if (reason := problem("model", model)) is not None:
        return reason
    if model.startswith(KERAS_PREFIX):
        try:
            constructor(model.removeprefix(KERAS_PREFIX))
        except UserError as exc:
            return str(exc)
    return None


def _check_configs(space: SearchSpace, bad) -> None:
    """Every fixed value and every grid value must make a valid TrialConfig.

    Grid points whose model cannot fit the image are rejected here, before any training;
    with Optuna ranges such points can only be found when sampled, and become failed
    trials with their reason.
    """
    from benchmark.augment import POLICIES
    from benchmark.data import default_image_size
    from benchmark.models import plan

    try:
        base = space.config({})
    except UserError as exc:
        raise bad(f"fixed: {exc}") from None
    points = space.grid_points() if space.strategy == "grid" else []
    for dim in space.dimensions:
        for v in dim.values or ():
            try:
                cfg = space.config({dim.name: v})
            except (UserError, TypeError) as exc:
                raise bad(f"space.{dim.name}: {exc}") from None
            if cfg.augmentation not in POLICIES:
                raise bad(
                    f"space.augmentation value {v!r} is not a policy; known: {POLICIES.known()}"
                )
            if (reason := _model_problem(cfg.model)) is not None:
                raise bad(f"space.model value {v!r}: {reason}")
    if (reason := _model_problem(base.model)) is not None:
        raise bad(f"fixed.model: {reason}")
    if base.augmentation not in POLICIES:
        raise bad(f"fixed.augmentation {base.augmentation!r}; known: {POLICIES.known()}")
    dataset = space.dataset or base.dataset
    size = base.image_size or default_image_size(dataset)
    unfit = []
    for point in points:
        cfg = space.config(point)
        try:
            plan(cfg, (cfg.image_size or size, cfg.image_size or size, 3), 2)
        except UserError:
            unfit.append(cfg.run_name)
    if unfit:
        raise bad(
            f"{len(unfit)} grid point(s) cannot fit {size}px images: {', '.join(unfit[:5])}; "
            "shrink depth/kernel_size, use padding: same or a larger image_size"
        )
