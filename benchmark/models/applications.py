"""Keras' own architectures by name (`--model keras:NAME`), always trained from scratch.

`keras:ResNet50V2` is `keras.applications.ResNet50V2(weights=None, ...)` with the dataset's
image shape and classes: never pretrained, so a result says what the architecture learns from
this data alone. Its own top is kept (`include_top=True`, whatever dropout or extra layers
that family puts there) with `classifier_activation=None`, and a float32 softmax follows, as
in every family: under mixed precision the family's own softmax would run in 16 bits.

Input scaling. The pipeline feeds float32 pixels in [0, 255]. Some families scale them
themselves (`include_preprocessing`, or EfficientNet's built-in Rescaling); the others expect
their module's `preprocess_input` to have run, in one of three modes, which the layers below
reproduce inside the model (so the logged model takes raw pixels like every other):
  tf     x / 127.5 - 1                          (ResNetV2, MobileNet, Inception, Xception ...)
  torch  x / 255, then ImageNet mean and std    (DenseNet)
  caffe  x - ImageNet mean, no scaling          (ResNet, VGG); caffe also swaps RGB to BGR,
         which for weights learnt from scratch is only a reordering of the first kernel.
Batch norm. Keras' MobileNetV2 and V3 keep 0.999 of their moving statistics a step, sized
for ImageNet's thousands of steps an epoch; every keras: net here keeps at most 0.9, PyTorch's
default and Keras' EfficientNetV2's own (see `cap_batch_norm_momentum`).

tests/test_families.py checks each mode against the module's own preprocess_input, and
that every keras.applications constructor has a mode here, so a Keras upgrade that adds a
family fails a test instead of guessing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras
from keras import layers

from benchmark.choices import KERAS_PREFIX, did_you_mean
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.models.batchnorm import with_fused_batch_norms
from benchmark.models.cnn import keras_name
from benchmark.presets import FAMILIES

OWN = "own"  # the family scales [0, 255] inputs itself
INPUT_MODES = {  # keras.applications module -> how it expects its input (see above)
    "convnext": OWN, "efficientnet": OWN, "efficientnet_v2": OWN, "mobilenet_v3": OWN,
    "densenet": "torch",
    "resnet": "caffe", "vgg16": "caffe", "vgg19": "caffe",
    "inception_resnet_v2": "tf", "inception_v3": "tf", "mobilenet": "tf", "mobilenet_v2": "tf",
    "nasnet": "tf", "resnet_v2": "tf", "xception": "tf",
}  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torch mode, of x / 255
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN = (123.68, 116.779, 103.939)  # caffe mode, of x in [0, 255], here in RGB order
BN_MOMENTUM = 0.9  # the most of its moving statistics a keras: net's batch norm keeps a step


@functools.cache
def architectures() -> tuple[str, ...]:
    """Every constructor keras.applications exports (its modules are lower case)."""
    apps = keras.applications
    return tuple(n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n)))


def constructor(name: str) -> Callable[..., keras.Model]:
    """keras.applications' constructor `name`; else one line naming the nearest ones."""
    if name not in architectures():
        hint = did_you_mean(name, architectures(), n=3)
        raise UserError(
            f"unknown keras.applications architecture {name!r} (model {KERAS_PREFIX}{name})"
            + (hint or f"; known: {', '.join(architectures())}")
        )
    return getattr(keras.applications, name)


def input_mode(make: Callable[..., keras.Model]) -> str:
    """How the family of `make` expects its input: `own`, `tf`, `torch` or `caffe`."""
    module = make.__module__.rsplit(".", 1)[-1]
    if module not in INPUT_MODES:
        raise UserError(f"keras.applications.{make.__name__}: how its module {module!r} scales "
                        "its input is not known here; add it to INPUT_MODES in "
                        "benchmark/models/applications.py")  # fmt: skip
    return INPUT_MODES[module]


def scaling(mode: str) -> list[keras.Layer]:
    """The layers that turn [0, 255] pixels into what a family of input mode `mode` expects."""
    if mode == "tf":
        return [layers.Rescaling(1.0 / 127.5, offset=-1.0)]
    if mode == "torch":
        variance = [s * s for s in IMAGENET_STD]
        return [layers.Rescaling(1.0 / 255), layers.Normalization(mean=IMAGENET_MEAN,
                                                                  variance=variance)]  # fmt: skip
    if mode == "caffe":
        return [layers.Normalization(mean=CAFFE_MEAN, variance=(1.0, 1.0, 1.0))]
    return []


@FAMILIES.register(name=KERAS_PREFIX + "NAME")
def build_application(
    cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int
) -> keras.Model:
    """keras.applications' `cfg.model` (keras:NAME) from scratch, for these images.

    One flat model (the scaling layers feed the architecture through `input_tensor`), so the
    FLOP count, the summary and the dtype policy see every layer. An input the architecture
    cannot take is a UserError with Keras' own reason.
    """
    name = cfg.model.removeprefix(KERAS_PREFIX)
    make = constructor(name)
    inputs = keras.Input(shape=image_shape)
    x = inputs
    for layer in scaling(input_mode(make)):
        x = layer(x)
    try:
        net = make(include_top=True, weights=None, input_tensor=x, input_shape=image_shape,
                   classes=n_classes, classifier_activation=None)  # fmt: skip
    except ValueError as exc:  # obtain_input_shape's "Input size must be at least 75x75", a
        reason = str(exc).strip().splitlines()[0]  # map shrunk below 1x1 on the way down
        raise UserError(
            f"model {cfg.model} cannot take {image_shape[0]}x{image_shape[1]} images: {reason}; "
            "use a larger image_size or another architecture"
        ) from None
    cap_batch_norm_momentum(net)
    net = with_fused_batch_norms(net)  # Keras' BN in one kernel, as the families use
    # float32 softmax: under mixed precision low-precision probabilities lose the small ones
    outputs = layers.Softmax(dtype="float32")(net.output)
    return keras.Model(net.inputs, outputs, name=keras_name(cfg.run_name))


def cap_batch_norm_momentum(model: keras.Model, most: float = BN_MOMENTUM) -> int:
    """Set every batch norm layer's momentum above `most` to `most`; how many were.

    Why: at 0.999, after 25 epochs of 17 Flowers (21 steps an epoch, 525 steps) 0.999**525 =
    59% of the moving statistics are still their initial 0 and 1. A MobileNetV3Small that
    reached 0.73 training accuracy scored 1/17, chance, in inference mode on its own training
    images, on validation and on test (flowers17-auto, 3 of 3 at 25 epochs). 0.99 was not
    enough: a 4th scored val 0.065 after 25 epochs. Many of its layers' variances are about
    1e-3, so the initial 1 left in the moving variance dwarfs them and each of its 34 batch
    norms shrinks the signal in inference: after 6 epochs at 0.99 its output was the same for
    every image. At 0.9 (a horizon of 10 steps) it scored 0.93 in inference mode on 256
    training images after 5 epochs (Adam 1e-3, one seed)."""
    capped = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            capped += cap_batch_norm_momentum(layer, most)
        elif isinstance(layer, layers.BatchNormalization) and layer.momentum > most:
            layer.momentum, capped = most, capped + 1
    return capped
