"""Test-time augmentation: the test split scored as the mean of the predicted probabilities
over a few views of each image (`--tta`), beside the plain `test_accuracy`.

- `flip`: the image and its mirror;
- `flip_translate`: those two, each also shifted 2 px diagonally down-right and up-left with
  reflected borders (6 views), airbench's flip-and-translate TTA at CIFAR's scale; the shift
  is the `shift_flip` policy's kind of move, so the net has seen such views in training.

May import: the train stage's pipeline.
"""

from __future__ import annotations

import keras
import numpy as np

from benchmark.train.pipeline import eval_dataset

SHIFT_PX = 2  # flip_translate: the shift of the translated views, px each way
# (mirror?, rows down, columns right) of each view
VIEWS: dict[str, tuple[tuple[bool, int, int], ...]] = {
    "flip": ((False, 0, 0), (True, 0, 0)),
    "flip_translate": tuple(
        (mirror, d, d) for mirror in (False, True) for d in (0, SHIFT_PX, -SHIFT_PX)
    ),
}


def view(x: np.ndarray, mirror: bool, dy: int, dx: int) -> np.ndarray:
    """Images `x` (NHWC) mirrored left-right if asked, then moved dy rows down and dx columns
    right; the uncovered border is the image reflected, as the shift policies fill it."""
    if mirror:
        x = x[:, :, ::-1]
    if not (dy or dx):
        return x
    p = max(abs(dy), abs(dx))
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, p - dy : p - dy + h, p - dx : p - dx + w]


def tta_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, tta: str = "flip",
                 batch: int = 256) -> float:  # fmt: skip
    """Accuracy of the mean of the predicted probabilities over the views of `tta`."""
    probs = sum(model.predict(eval_dataset(view(x, *v), y, batch), verbose=0) for v in VIEWS[tta])
    return float(np.mean(np.argmax(probs, axis=1) == y))


def flip_tta_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the mean of the predicted probabilities for each image and its mirror."""
    return tta_accuracy(model, x, y, "flip")
