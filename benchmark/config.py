"""One frozen config per trial: CLI flags, MLproject parameters, YAML and MLflow params are
all views of this object, so no setting is lost between them.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from benchmark.choices import CHOICES, KERAS_PREFIX, display, problem
from benchmark.errors import UserError
from benchmark.presets import MODELS, model_preset

# Allowed values are declared once, in benchmark/choices.py (the CLI's help reads them too).
OPTIMIZERS = CHOICES["optimizer"]  # sgd: Nesterov momentum 0.9
PADDINGS = CHOICES["padding"]
LABEL_MODES = CHOICES["label_mode"]
HEADS = CHOICES["head"]  # gap: global average pooling before the classifier
LR_SCHEDULES = CHOICES["lr_schedule"]
TTAS = CHOICES["tta"]
# lr_scaling linear: learning_rate is the rate for this many images a step (Goyal et al.'s
# rule, "0.1 per 256"), so a space can search the batch without re-searching the rate.
LR_REFERENCE_BATCH = 256


@dataclass(frozen=True)
class Rule:
    """What a field's value must be, said the same way wherever the value came from (a CLI
    flag, an MLproject parameter, a YAML space, a config built in code, load_dataset)."""

    ok: Callable[[Any], bool]
    says: str  # completes "`field` should be ..."


POSITIVE = Rule(lambda v: _is_int(v) and v > 0, "a positive integer")
NONNEG = Rule(lambda v: _is_int(v) and v >= 0, "an integer >= 0")
POSITIVE_OR_NONE = Rule(lambda v: v is None or (_is_int(v) and v > 0), "a positive integer or None")
FRACTION = Rule(lambda v: 0.0 < v < 1.0, "between 0 and 1 (exclusive)")
RATE = Rule(lambda v: 0.0 <= v < 1.0, "in [0, 1)")
ANY = Rule(lambda v: True, "")
SPLIT = Rule(lambda v: _is_int(v) and 1 <= v <= 3, "1, 2 or 3")
LEARNING_RATE = Rule(lambda v: v > 0, "positive")
WEIGHT_DECAY = Rule(lambda v: v is None or v >= 0, "0 or more (or None: the optimizer's default)")
WARMUP = Rule(NONNEG.ok, "an integer >= 0 (capped at epochs)")
PATIENCE = Rule(NONNEG.ok, "an integer >= 0 (0 = off)")
BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")


def stage_numbers(text: str) -> tuple[int, ...]:
    """`64-128-256` -> (64, 128, 256): one number a stage, joined by '-' so that the value
    reads the same on the command line, in YAML, in an MLflow param and in a run name."""
    return tuple(int(n) for n in text.split("-"))


def _per_stage(ok: Callable[[int], bool]) -> Callable[[Any], bool]:
    return lambda v: bool(re.fullmatch(r"\d+(-\d+)*", v)) and all(map(ok, stage_numbers(v)))


WIDTHS = Rule(_per_stage(lambda n: n > 0), "positive integers joined by '-', e.g. 64-128-256")
COUNTS = Rule(_per_stage(lambda n: True), "integers >= 0 joined by '-', e.g. 1-0-1")
FLAGS = Rule(_per_stage(lambda n: n in (0, 1)), "0s and 1s joined by '-', e.g. 1-1-1")


def one_of(field: str) -> Rule:
    return Rule(lambda v: v in CHOICES[field], f"one of {', '.join(CHOICES[field])}")


def setting(default: Any, rule: Rule = ANY, help: str = "") -> Any:
    """A TrialConfig field with its rule and its help beside it (dataclass field metadata):
    the validation and the CLI's flag read them from here."""
    return dataclasses.field(default=default, metadata={"rule": rule, "help": help})


@dataclass(frozen=True)
class TrialConfig:
    # data
    dataset: str = setting("cifar10", help="cifar10 | cifar100 | flowers17 | folder:PATH")
    image_size: int | None = setting(
        None, POSITIVE_OR_NONE, "px, square; None = the dataset's default (CIFAR 32, flowers 64)"
    )
    label_mode: str = setting(
        "fine", one_of("label_mode"), "cifar100 only: fine (100) or coarse (20) labels"
    )
    split: int = setting(
        1, SPLIT, "flowers17 official split 1..3 (used when datasplits.mat is present)"
    )
    val_fraction: float = setting(
        0.1, FRACTION, "CIFAR/folder: share of train held out for model selection"
    )
    max_train_samples: int | None = setting(
        None, POSITIVE_OR_NONE, "stratified train subset for quick runs; None = all"
    )
    # model (the architecture family's preset fills these; see benchmark/presets.py)
    model: str = setting(
        "cnn",
        help="cnn (from the fields below), seed (the lab's net), resnet (stage_widths, "
        "residual_blocks, stage_pools; filters_base: its prep conv; its defaults: head gmp, "
        "dense_units 0, batch_norm true) or keras:NAME (any keras.applications architecture, "
        "from scratch)",
    )
    depth: int = setting(
        3,
        POSITIVE,
        "conv blocks, 2x2 max-pools between them (pool_position says where)",
    )
    kernel_size: int = setting(3, POSITIVE, "conv window, px")
    dense_units: int = setting(64, NONNEG, "width of the hidden dense layer; 0 = none")
    filters_base: int = setting(32, POSITIVE, "filters of the first conv block")
    filters_max: int = setting(128, POSITIVE, "filters double per block up to this cap")
    padding: str = setting("same", one_of("padding"), "valid shrinks each conv by kernel_size - 1")
    batch_norm: bool = setting(False, BOOLEAN, "BatchNormalization after each conv")
    dropout: float = setting(0.0, RATE, "before the classifier, 0 = off")
    head: str = setting(
        "flatten",
        one_of("head"),
        "flatten | gap | gmp (global average / max pooling: far fewer dense weights)",
    )
    convs_per_block: int = setting(1, POSITIVE, "2 = VGG-style: two convs before each pool")
    block_dropout: float = setting(0.0, RATE, "after each conv block (after its pool), 0 = off")
    pool_position: str = setting(
        "end",
        one_of("pool_position"),
        "end: after a block's convs, none after the last block | early: right after each "
        "block's first conv, so its other convs run at half resolution (airbench's layout)",
    )
    stage_widths: str = setting(
        "64-128-256", WIDTHS, "resnet: filters of each stage (half of ResNet-9's 128-256-512)"
    )
    residual_blocks: str = setting(
        "1-0-1", COUNTS, "resnet: residual blocks (two conv-BN-ReLU + identity) after each stage"
    )
    stage_pools: str = setting(
        "1-1-1", FLAGS, "resnet: 1 = a 2x2 max-pool after the stage's conv, before its blocks"
    )
    # training
    augmentation: str = setting("none", help="registered policy, see benchmark/augment/policies.py")
    epochs: int = setting(20, POSITIVE, "passes over the training split")
    batch_size: int = setting(32, POSITIVE, "images per step")
    optimizer: str = setting("rmsprop", one_of("optimizer"), "Keras' default, as in the seed lab")
    learning_rate: float = setting(
        0.001, LEARNING_RATE, "Keras' default for rmsprop and adam; the peak of a schedule"
    )
    weight_decay: float | None = setting(
        None, WEIGHT_DECAY, "decoupled, per step x lr; None = the optimizer's default"
    )
    lr_schedule: str = setting(
        "constant",
        one_of("lr_schedule"),
        "constant | cosine (to 0) | onecycle (up, then down to 0)",
    )
    warmup_epochs: int = setting(
        0, WARMUP, "linear ramp to learning_rate (capped at epochs); onecycle: 0 = 30%"
    )
    label_smoothing: float = setting(0.0, RATE, "share of each target spread over all classes")
    lr_scaling: str = setting(
        "none",
        one_of("lr_scaling"),
        f"none | linear: the peak rate is learning_rate x batch_size / {LR_REFERENCE_BATCH}",
    )
    ema: float = setting(
        0.0,
        RATE,
        "weight EMA momentum, e.g. 0.999 (0 = off): validation, early stopping and the test "
        "use the averaged weights",
    )
    early_stopping_patience: int = setting(
        0, PATIENCE, "epochs without a better val_accuracy; 0 = off"
    )
    tta: str = setting(
        "none",
        one_of("tta"),
        "none | flip: the test split also scored as mean(image, mirror) | flip_translate: "
        "mean over the image, its mirror and both shifted 2 px diagonally each way",
    )
    seed: int = setting(
        0, NONNEG, "weights, shuffling and augmentation; the data split is fixed (seed 0)"
    )
    steps_per_execution: int = setting(
        16, POSITIVE, "train steps per graph call: less Python per step"
    )
    precision: str = setting(
        "auto",
        one_of("precision"),
        "auto: mixed_float16 on a tensor-core GPU, mixed_bfloat16 on a CPU with AVX-512 BF16 "
        "or AMX, else float32; augmentation and the softmax stay float32",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # types first: YAML and CLI hand us anything
            check_setting(f.name, getattr(self, f.name))
        if self.model == "resnet":  # one number a stage: the per-stage settings must agree
            stages = len(stage_numbers(self.stage_widths))
            for name in ("residual_blocks", "stage_pools"):
                value = getattr(self, name)
                if len(stage_numbers(value)) != stages:
                    raise UserError(
                        f"`{name}` should give one number for each of the {stages} stages of "
                        f"stage_widths={self.stage_widths}. Received: {name}={value!r}"
                    )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_options(cls, **options: Any) -> TrialConfig:
        """Build from user options: the model preset fills what the user did not give.

        Options that are None mean "not given". Unknown keys are an error that lists the
        known ones (nanoGPT's habit: a typo must fail, not be ignored).
        """

        unknown = sorted(set(options) - set(cls.field_names()))
        if unknown:
            raise UserError(
                f"unknown setting {unknown[0]!r}; allowed: {', '.join(cls.field_names())}"
            )
        given = {k: v for k, v in options.items() if v is not None}
        policy = given.get("augmentation", cls.augmentation)
        if (reason := problem("augmentation", policy)) is not None:
            raise UserError(reason)  # unknown: fail before a run
        merged = {**model_preset(given.get("model", cls.model)), **given}
        if merged.get("model", cls.model) == "cnn":  # a family point that IS a preset: name it
            full = dataclasses.asdict(cls(**merged))
            for name in MODELS.names():
                preset = model_preset(name)
                if preset and all(full[k] == v for k, v in preset.items()):
                    merged["model"] = name
        return cls(**merged)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TrialConfig:
        """The config a run logged (`to_params`, as MLflow gives it back: strings). Keys
        that are not fields (filters, split sizes) are ignored; a field the run was logged
        without keeps its default, so runs logged before a field existed still read."""
        return cls(**cls.values_from_params(params))

    @classmethod
    def values_from_params(cls, params: Mapping[str, str]) -> dict[str, Any]:
        """Each field's value parsed back from its logged string (the one parser of logged
        params: the search, the ablation and the report all read runs through it)."""
        values = {k: parse_param(params[k]) for k in cls.field_names() if k in params}
        return {  # a text field keeps its text: a one-stage stage_widths `128` is not an int
            k: params[k] if _KINDS[k] == (str,) and not isinstance(v, str) else v
            for k, v in values.items()
        }

    def to_params(self) -> dict[str, Any]:
        """MLflow params: every field, None spelled out so the UI shows it was unset."""
        return {k: ("None" if v is None else v) for k, v in dataclasses.asdict(self).items()}

    @property
    def peak_learning_rate(self) -> float:
        """The rate the optimizer (or its schedule's peak) uses: `learning_rate`, scaled by
        batch_size / LR_REFERENCE_BATCH under lr_scaling linear, so that larger batches take
        proportionally larger steps (one rate then fits every batch size a space searches)."""
        if self.lr_scaling == "linear":
            return self.learning_rate * self.batch_size / LR_REFERENCE_BATCH
        return self.learning_rate

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)

    @property
    def run_name(self) -> str:
        """Says the configuration, so the MLflow runs table reads without opening runs.

        The architecture, then the policy: `d4-k3-w0-gap-aug=strong`, and for the lab's net
        with the lab's policy (`--model seed --augmentation seed`) `lab-net-d3-k3-w64-aug=lab`
        (choices.DISPLAY: neither says "seed", which means the random seed everywhere else).
        """
        return f"{self.arch_name}-{augmentation_tag(self.augmentation)}"

    @property
    def arch_name(self) -> str:
        """The run name without its policy: `lab-net-d3-k3-w64`, `d3-k3-w64-c2-gap`, and
        `-pe` when the pools come early; `resnet-w32-64-128-256-r1-0-1-gmp` (prep and stage
        widths, residual blocks, `-p1-0-1` where a stage does not pool, the head);
        `keras-MobileNetV3Small`."""
        if self.model.startswith(KERAS_PREFIX):
            return f"keras-{self.model.removeprefix(KERAS_PREFIX)}"
        head = f"-{self.head}" if self.head != "flatten" else ""
        if self.model == "resnet":
            arch = f"resnet-w{self.filters_base}-{self.stage_widths}-r{self.residual_blocks}"
            arch += f"-p{self.stage_pools}" if 0 in stage_numbers(self.stage_pools) else ""
            arch += f"-k{self.kernel_size}" if self.kernel_size != 3 else ""
            arch += f"-d{self.dense_units}" if self.dense_units else ""
            return arch + head
        prefix = "" if self.model == "cnn" else f"{display('model', self.model)}-"
        arch = f"d{self.depth}-k{self.kernel_size}-w{self.dense_units}"
        arch += f"-c{self.convs_per_block}" if self.convs_per_block > 1 else ""
        arch += head
        arch += "-pe" if self.pool_position == "early" else ""
        return prefix + arch


def parse_param(text: Any) -> Any:
    """A logged param back to its type: YAML reads `0.1`, `true`, `32`; "None" is None."""
    if not isinstance(text, str):
        return text
    try:
        return float(text) if "e" in text.lower() and "." not in text else _yaml(text)
    except ValueError:  # `1e-05`: YAML 1.1 reads an exponent without a dot as text
        return _yaml(text)


def _yaml(text: str) -> Any:
    value = yaml.safe_load(text) if text else text
    return None if value == "None" else value


def augmentation_tag(policy: str) -> str:
    """How a run name ends for the policy `policy`: `aug=none`, `aug=strong`, `aug=lab`."""
    return f"aug={display('augmentation', policy)}"


def _kinds(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint) or (hint,)
    return tuple(a for a in args) + ((int,) if float in args else ())  # 3 is a fine float


_KINDS = {name: _kinds(hint) for name, hint in typing.get_type_hints(TrialConfig).items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_setting(name: str, value: Any) -> None:
    """The one validation of a setting `name`: its type, then its field's rule; raises
    UserError with the one-line message every route (CLI, MLproject, YAML, code) shows."""
    kinds = _KINDS[name]
    if not (value is None and type(None) in kinds):
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
            raise UserError(f"`{name}` should be of type {names}. Received: {name}={value!r}")
    rule = _RULES[name]
    if not rule.ok(value):
        raise UserError(f"`{name}` should be {rule.says}. Received: {name}={value!r}")


_RULES = {f.name: f.metadata.get("rule", ANY) for f in dataclasses.fields(TrialConfig)}
