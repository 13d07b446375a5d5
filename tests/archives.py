"""Archives in the upstream layouts, made small: CIFAR-100 cannot be had here, so its path is
tested on a synthetic archive. Shared by the dataset and lab tests."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            add_bytes(tar, name, data)
    return path


def cifar100_archive(directory: Path, per_class: int = 5) -> tuple[Path, dict]:
    """A tiny archive in the upstream CIFAR-100 layout: 100 fine, 20 coarse classes."""
    rng = np.random.default_rng(1)

    def batch(n_per_class: int) -> dict:
        fine = np.repeat(np.arange(100), n_per_class)
        return {
            b"data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8),
            b"fine_labels": fine.tolist(),
            b"coarse_labels": (fine // 5).tolist(),
            b"filenames": [b"img_%d.png" % i for i in range(len(fine))],
            b"batch_label": b"synthetic",
        }

    parts = {"train": batch(per_class), "test": batch(1)}
    meta = {
        b"fine_label_names": [b"fine_%02d" % i for i in range(100)],
        b"coarse_label_names": [b"coarse_%02d" % i for i in range(20)],
    }
    members = {f"cifar-100-python/{k}": pickle.dumps(v, protocol=2) for k, v in parts.items()}
    members["cifar-100-python/meta"] = pickle.dumps(meta, protocol=2)
    return write_tar(directory / "cifar-100-python.tar.gz", members), parts


