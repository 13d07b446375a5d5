"""`python -m benchmark predict --model URI PATH...`: classify image files with a logged model.

The model is loaded through MLflow (`models:/cnn-benchmark-flowers17@champion`,
`models:/m-...`, `runs:/RUN/model`), so what is predicted is what the registry or the run
holds. Each file is prepared as training prepared its images (benchmark.data.images: RGB,
centre square crop, bilinear resize to the model's image size), then one line per image
gives its top-3 classes. Unreadable files are skipped and counted in one line; a model that
cannot be loaded is one error line (exit 2).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from benchmark.data.images import decode_images
from benchmark.errors import UserError

TOP = 3


def cmd_predict(args: argparse.Namespace) -> int:
    paths = [*(args.paths or []), *(args.path or [])]
    if not paths:
        raise UserError("predict needs at least one image file or folder (PATH...)")
    files = image_files(paths)
    model = load_model(args.model)
    size = image_size(model, args.model)
    images, ok = decode_images(files, size)
    read = [f for f, good in zip(files, ok, strict=True) if good]
    rows: list[tuple[str, list[tuple[str, float]]]] = []
    if len(read):
        probs = model.predict(images)
        names = list(probs.columns)
        for f, p in zip(read, probs.to_numpy(), strict=True):
            order = np.argsort(-p, kind="stable")[:TOP]
            rows.append((str(f), [(names[i], float(p[i])) for i in order]))
    for path, top in rows:
        print(f"{path}  " + "  ".join(f"{name} {p:.3f}" for name, p in top))
    skipped = [f for f, good in zip(files, ok, strict=True) if not good]
    if skipped:
        shown = ", ".join(str(f) for f in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        print(f"skipped {len(skipped)} unreadable file(s): {shown}", file=sys.stderr)
    if args.output:
        write_csv(Path(args.output), rows)
        print(f"wrote {len(rows)} prediction(s) to {args.output}")
    from benchmark.train.tracking import Tracking

    # Under `mlflow run -e predict`: its run says what it did, and is no trial for the report.
    note = f"Classified {len(rows)} image(s) with `{args.model}`"
    note += f"; skipped {len(skipped)} unreadable file(s)." if skipped else "."
    Tracking.from_env().mark_project_run("predict", note=note)
    return 0


def image_files(paths: list[str]) -> list[Path]:
    """The files named, and every file under the folders named (sorted; hidden ones not)."""
    files: list[Path] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not _hidden(f, p))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{given!r} is neither an image file nor a folder")
    if not files:
        raise UserError(f"no files to classify in {', '.join(paths)}")
    return files


def _hidden(f: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in f.relative_to(root).parts)


def load_model(uri: str):
    """The MLflow pyfunc model at `uri`; any failure to find or load it is one line."""
    import mlflow

    try:
        return mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # MlflowException, OSError, a registry without the name, ...
        from benchmark.train.tracking import damaged_store

        if (line := damaged_store(exc)) is not None:
            raise UserError(line) from None
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {uri!r}: {first}") from None


def image_size(model, uri: str) -> int:
    """The side of the square uint8 images the model takes, from its signature."""
    signature = model.metadata.get_input_schema() if model.metadata else None
    try:
        shape = signature.inputs[0].shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError
        return int(shape[1])
    except (AttributeError, IndexError, TypeError, ValueError):
        raise UserError(
            f"model {uri!r} is not an image classifier of this suite (its signature does not "
            "take uint8 images (N, size, size, 3))"
        ) from None


def write_csv(path: Path, rows: list[tuple[str, list[tuple[str, float]]]]) -> None:
    """One row per image: its path, then the top classes and their probabilities."""
    header = ["path"] + [f"{k}{i}" for i in range(1, TOP + 1) for k in ("class", "probability")]
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for name, top in rows:
            out.writerow([name] + [v for c, p in top for v in (c, f"{p:.6f}")])
