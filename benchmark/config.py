"""One frozen config per trial: CLI flags, MLproject parameters, YAML and MLflow params are
all views of this object, so no setting is lost between them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from benchmark.choices import CHOICES, display, problem
from benchmark.errors import UserError
from benchmark.presets import MODELS, model_preset

# Allowed values are declared once, in benchmark/choices.py (the CLI's help reads them too).
OPTIMIZERS = CHOICES["optimizer"]  # sgd: Nesterov momentum 0.9
PADDINGS = CHOICES["padding"]
LABEL_MODES = CHOICES["label_mode"]
HEADS = CHOICES["head"]  # gap: global average pooling before the classifier
LR_SCHEDULES = CHOICES["lr_schedule"]
TTAS = CHOICES["tta"]


@dataclass(frozen=True)
class TrialConfig:
    # data
    dataset: str = "cifar10"  # cifar10 | cifar100 | flowers17 | folder:PATH
    image_size: int | None = None  # px, square; None = the dataset's default (CIFAR 32, flowers 64)
    label_mode: str = "fine"  # cifar100 only: fine (100) or coarse (20) labels
    split: int = 1  # flowers17 official split 1..3 (used when datasplits.mat is present)
    val_fraction: float = 0.1  # CIFAR/folder: share of train held out for model selection
    max_train_samples: int | None = None  # stratified train subset for quick runs; None = all
    # model (the architecture family's preset fills these; see benchmark/models.py)
    model: str = "cnn"  # registered family/preset: cnn (from the fields below) or seed
    depth: int = 3  # conv blocks; each but the last ends in a 2x2 max-pool
    kernel_size: int = 3  # conv window, px
    dense_units: int = 64  # width of the hidden dense layer; 0 = none
    filters_base: int = 32  # filters of the first conv block
    filters_max: int = 128  # filters double per block up to this cap
    padding: str = "same"  # valid shrinks each conv by kernel_size - 1
    batch_norm: bool = False  # BatchNormalization after each conv
    dropout: float = 0.0  # before the classifier, 0 = off
    head: str = "flatten"  # flatten | gap (global average pooling: far fewer dense weights)
    convs_per_block: int = 1  # 2 = VGG-style: two convs before each pool
    block_dropout: float = 0.0  # after each conv block (after its pool), 0 = off
    # training
    augmentation: str = "none"  # registered policy, see benchmark/augment.py
    epochs: int = 20
    batch_size: int = 32  # images per step
    optimizer: str = "rmsprop"  # Keras' default, as in the seed lab
    learning_rate: float = 0.001  # Keras' default for rmsprop and adam; the peak of a schedule
    weight_decay: float | None = None  # decoupled, per step x lr; None = the optimizer's default
    lr_schedule: str = "constant"  # constant | cosine (to 0) | onecycle (up, then down to 0)
    warmup_epochs: int = 0  # linear ramp to learning_rate (capped at epochs); onecycle: 0 = 30%
    label_smoothing: float = 0.0  # share of each target spread over all classes
    early_stopping_patience: int = 0  # epochs without a better val_accuracy; 0 = off
    tta: str = "none"  # none | flip: the test split also scored as mean(image, mirror)
    seed: int = 0  # weights, shuffling and augmentation; the data split is fixed (seed 0)
    steps_per_execution: int = 16  # train steps per graph call: less Python per step

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, allowed: str) -> None:
            if not ok:
                value = getattr(self, field)
                raise UserError(f"`{field}` should be {allowed}. Received: {field}={value!r}")

        for f in dataclasses.fields(self):  # types first: YAML and CLI hand us anything
            value, kinds = getattr(self, f.name), _KINDS[f.name]
            if value is None and type(None) in kinds:
                continue
            ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
            if not ok:
                names = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
                raise UserError(
                    f"`{f.name}` should be of type {names}. Received: {f.name}={value!r}"
                )

        positive = "a positive integer"
        need(_is_int(self.epochs) and self.epochs > 0, "epochs", positive)
        need(_is_int(self.batch_size) and self.batch_size > 0, "batch_size", positive)
        need(_is_int(self.depth) and self.depth > 0, "depth", positive)
        need(_is_int(self.kernel_size) and self.kernel_size > 0, "kernel_size", positive)
        need(_is_int(self.dense_units) and self.dense_units >= 0, "dense_units", "an integer >= 0")
        need(_is_int(self.filters_base) and self.filters_base > 0, "filters_base", positive)
        need(_is_int(self.filters_max) and self.filters_max > 0, "filters_max", positive)
        need(_is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0")
        need(_is_int(self.split) and 1 <= self.split <= 3, "split", "1, 2 or 3")
        need(
            _is_int(self.steps_per_execution) and self.steps_per_execution > 0,
            "steps_per_execution",
            positive,
        )
        need(
            self.image_size is None or (_is_int(self.image_size) and self.image_size > 0),
            "image_size",
            "a positive integer or None",
        )
        need(
            self.max_train_samples is None
            or (_is_int(self.max_train_samples) and self.max_train_samples > 0),
            "max_train_samples",
            "a positive integer or None",
        )
        need(0.0 < self.val_fraction < 1.0, "val_fraction", "between 0 and 1 (exclusive)")
        need(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)")
        need(self.learning_rate > 0, "learning_rate", "positive")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}")
        need(self.padding in PADDINGS, "padding", f"one of {', '.join(PADDINGS)}")
        need(self.label_mode in LABEL_MODES, "label_mode", f"one of {', '.join(LABEL_MODES)}")
        need(isinstance(self.batch_norm, bool), "batch_norm", "true or false")
        need(self.head in HEADS, "head", f"one of {', '.join(HEADS)}")
        need(
            _is_int(self.convs_per_block) and self.convs_per_block > 0,
            "convs_per_block",
            positive,
        )
        need(0.0 <= self.block_dropout < 1.0, "block_dropout", "in [0, 1)")
        need(
            self.weight_decay is None or self.weight_decay >= 0,
            "weight_decay",
            "0 or more (or None: the optimizer's default)",
        )
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {', '.join(LR_SCHEDULES)}")
        need(  # more than epochs is allowed: a space's warm-up survives `-P epochs=1`
            _is_int(self.warmup_epochs) and self.warmup_epochs >= 0,
            "warmup_epochs",
            "an integer >= 0 (capped at epochs)",
        )
        need(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "in [0, 1)")
        need(
            _is_int(self.early_stopping_patience) and self.early_stopping_patience >= 0,
            "early_stopping_patience",
            "an integer >= 0 (0 = off)",
        )
        need(self.tta in TTAS, "tta", f"one of {', '.join(TTAS)}")

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

    def to_params(self) -> dict[str, Any]:
        """MLflow params: every field, None spelled out so the UI shows it was unset."""
        return {k: ("None" if v is None else v) for k, v in dataclasses.asdict(self).items()}

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
        """The run name without its policy: `lab-net-d3-k3-w64`, `d3-k3-w64-c2-gap`."""
        prefix = "" if self.model == "cnn" else f"{display('model', self.model)}-"
        arch = f"d{self.depth}-k{self.kernel_size}-w{self.dense_units}"
        arch += f"-c{self.convs_per_block}" if self.convs_per_block > 1 else ""
        arch += "-gap" if self.head == "gap" else ""
        return prefix + arch


def augmentation_tag(policy: str) -> str:
    """How a run name ends for the policy `policy`: `aug=none`, `aug=strong`, `aug=lab`."""
    return f"aug={display('augmentation', policy)}"


def _kinds(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint) or (hint,)
    return tuple(a for a in args) + ((int,) if float in args else ())  # 3 is a fine float


_KINDS = {name: _kinds(hint) for name, hint in typing.get_type_hints(TrialConfig).items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
