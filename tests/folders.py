"""A folder dataset as a user has one: one subfolder of small PNGs per class, each class its
own mean colour (random patterns around it), seeded. Shared by the report and space tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200))


def shapes_tree(root: Path, per_class: int = 10, size: int = 16) -> Path:
    """3 classes x `per_class` random-pattern `size`x`size` PNGs under `root`."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate(COLOURS):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(rng.normal(colour, 40, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(img).save(root / f"class{c}" / f"{i}.png")
    return root
