"""Every shipped space file loads, and the default folder space runs on a folder of images."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from benchmark import search as search_mod
from benchmark.space import SPACES_DIR, load_space, space_path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))


def test_the_spaces_folder_is_the_shipped_one():
    assert SPACES_DIR.resolve() == (REPO / "search_spaces").resolve()
    assert {"folder.yaml", "cifar10.yaml", "cifar100.yaml", "flowers17.yaml"} <= {
        p.name for p in SHIPPED
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_loads(path):
    space = load_space(path)
    assert space.dimensions
    if space.strategy == "grid":
        assert space.grid_points()


def _shapes(root: Path, size: int = 16, per_class: int = 10) -> Path:
    """3 classes of small PNGs, each class its own mean colour: a folder as a user has one."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(rng.normal(colour, 40, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(img).save(root / f"class{c}" / f"{i}.png")
    return root


def test_the_default_folder_space_dry_runs_on_a_folder_tree(tmp_path, caplog):
    dataset = f"folder:{_shapes(tmp_path / 'shapes')}"
    space = load_space(space_path(dataset))  # what `search --dataset folder:PATH` reads
    assert Path(space.path).name == "folder.yaml"
    lines: list[str] = []
    with caplog.at_level(logging.INFO, logger="benchmark.datasets"):
        est = search_mod.dry_run(space, dataset=dataset, printer=lines.append)
    assert "image size 16 px: the images' own (all 16x16)" in caplog.text  # not upscaled to 64
    rows = [line for line in lines[1:-1] if line.strip()]
    assert len(rows) == len(space.grid_points()) == 8
    assert not any("rejected" in line for line in rows), lines
    assert "estimated total" in lines[-1] and est > 0
    assert "on 18 images" in lines[-1]  # 6 of each class's 10: 2 go to val, 2 to test
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
