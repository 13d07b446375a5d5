"""`python -m benchmark bench`'s options and the settings they default to.

Apart from benchmark/bench.py because that module imports Keras and TensorFlow (seconds), and
`bench --help` must answer without them; bench.py imports its settings from here.
"""

from __future__ import annotations

import argparse
import os

from benchmark import argtypes
from benchmark.choices import AUGMENTATIONS, known
from benchmark.config import TrialConfig
from benchmark.data import DATA_ENV

SYNTHETIC = "synthetic"  # random uint8 images: throughput does not depend on the pixels
SYNTHETIC_SHAPE = (32, 32, 3)  # CIFAR's shape
SYNTHETIC_CLASSES = 10
STEPS = 200  # steps per timed repeat: ~6 s of the notebook's loop on 2 cores
REPEATS = 5  # timed repeats per pipeline (bimodal timings here: 3 is too few); median shown
MIN_REPEATS = 5  # fewer and the median follows the neighbours' load: 1.15-2.06 run to run
ACCURACY_EPOCHS = 20  # the seed lab's epochs
TRACKING_EPOCHS = 3  # epochs per tracked/untracked fit in --tracking
BATCH = 32  # the seed lab's batch size: throughput, accuracy and tracking modes
GPU_CHECK_IMAGES = 50_000  # --gpu-check: CIFAR-10's training set size, random pixels
GPU_CHECK_EPOCHS = 20
GPU_CHECK_BATCH = 512  # a GPU step per 32 images is all launch overhead
PRECISION_BATCH = 64  # --precision: the batch issue 30 measured bf16 at
# --precision: the benched nets (benchmark/bench/precision.py FAMILIES has their settings)
PRECISION_FAMILIES = ("cnn", "resnet", "resnet9", "keras:MobileNetV3Small")

EPILOG = """\
example:
  python -m benchmark bench --augmentation seed --steps 100
  python -m benchmark bench --accuracy --data-dir ../shared/data --epochs 5 --seeds 0,1
  python -m benchmark bench --precision --steps 50   (float32 vs bf16 per family)
  python -m benchmark bench --precision --families resnet9
  python -m benchmark bench --gpu-check        (on a machine with a GPU)"""


def repeats(text: str) -> int:
    """--repeats: at least MIN_REPEATS, so that the median is a stable figure."""
    value = argtypes.integer(text)
    if value < MIN_REPEATS:
        raise argtypes.Rejected(text, f"expected {MIN_REPEATS} or more (a median of fewer "
                                      "repeats moves with the machine's other load)")  # fmt: skip
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--augmentation",
        type=argtypes.choice("augmentation"),
        default="seed",
        metavar="POLICY",
        help=f"one of: {', '.join(AUGMENTATIONS)} (default: seed)",
    )
    parser.add_argument(
        "--batch-size",
        type=argtypes.positive,
        default=None,
        help=f"images per step (default: {BATCH}; --gpu-check: {GPU_CHECK_BATCH}; "
        f"--precision: {PRECISION_BATCH})",
    )
    parser.add_argument(
        "--dataset",
        type=argtypes.choice("dataset", extra=(SYNTHETIC,)),
        default=None,
        metavar="NAME",
        help=f"{SYNTHETIC} (random uint8 {SYNTHETIC_SHAPE} images) or one of: "
        f"{known('dataset')}; default: {SYNTHETIC}, or cifar10 when a data dir is given "
        "(--accuracy: cifar10)",
    )
    parser.add_argument("--data-dir", default=None, help=f"archives folder (or ${DATA_ENV})")
    parser.add_argument(
        "--steps", type=argtypes.positive, default=STEPS, help="steps per timed repeat"
    )
    parser.add_argument(
        "--repeats",
        type=repeats,
        default=REPEATS,
        help=f"timed repeats each, interleaved (at least {MIN_REPEATS}; default {REPEATS})",
    )
    parser.add_argument(
        "--seed", type=argtypes.nonneg, default=0, help="weights, shuffle, augmentation"
    )
    parser.add_argument(
        "--steps-per-execution",
        type=argtypes.positive,
        default=None,
        help=f"suite only; default {TrialConfig.steps_per_execution} (TrialConfig's)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--accuracy", action="store_true", help="test accuracy of both after --epochs"
    )
    mode.add_argument(
        "--tracking", action="store_true", help="time the suite's fit with/without MLflow"
    )
    mode.add_argument(
        "--precision",
        action="store_true",
        help="float32 vs mixed_bfloat16 images/s of a training step, per family "
        "(--families), interleaved; augmentation off",
    )
    mode.add_argument(
        "--gpu-check",
        action="store_true",
        help=f"GPU path: the seed net, {GPU_CHECK_EPOCHS} epochs on {GPU_CHECK_IMAGES:,} "
        "CIFAR-shaped images; images/s, epoch time, GPU utilization",
    )
    parser.add_argument(
        "--families",
        type=argtypes.names("bench family", PRECISION_FAMILIES),
        default=PRECISION_FAMILIES,
        metavar="LIST",
        help=f"--precision: a comma list of {', '.join(PRECISION_FAMILIES)} (default: all)",
    )
    parser.add_argument(
        "--epochs",
        type=argtypes.positive,
        default=None,
        help=f"--accuracy: default {ACCURACY_EPOCHS}; --tracking: default {TRACKING_EPOCHS}",
    )
    parser.add_argument("--seeds", type=argtypes.seeds, default=(0,), help="--accuracy: e.g. 0,1,2")


RETIME_EPILOG = """\
example:
  python -m benchmark retime --dataset flowers17 --data-dir ../shared/data --top 10"""


def add_retime_arguments(parser: argparse.ArgumentParser) -> None:
    """`retime`: the dry run's two-epoch probe of each configuration in the store."""
    parser.add_argument(
        "--dataset",
        type=argtypes.choice("dataset"),
        required=True,
        metavar="NAME",
        help=f"one of: {known('dataset')}",
    )
    parser.add_argument(
        "--top",
        type=argtypes.positive,
        default=None,
        metavar="N",
        help="only the N best configurations by validation accuracy (default: all)",
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get(DATA_ENV), help=f"archives folder (or ${DATA_ENV})"
    )
    parser.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI")
