"""Finding a published dataset's archive: the user's data dir, the Keras cache, or download.

Owns `Upstream` (what an archive is called and where it comes from), `Found` (where it
turned up), `locate`, `download`, `side_file` and the extraction of a found archive into
the cache. Machines may be offline, so data is looked for in a user directory first
(``--data-dir`` / ``BENCHMARK_DATA_DIR``), then in the Keras cache, and downloaded only as
a last resort. User files are read, never written next to.

Imports: benchmark.errors, benchmark.data.archive and benchmark.data.cache.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.archive import file_md5, safe_extract
from benchmark.data.cache import listing_hash
from benchmark.errors import UserError

DATA_ENV = "BENCHMARK_DATA_DIR"


@dataclass(frozen=True)
class Upstream:
    """One upstream archive: file name, top folder inside it, download origin."""

    name: str  # dataset name, for cache directory names
    archive: str
    folder: str
    url: str
    md5: str


@dataclass(frozen=True)
class Found:
    """Where the data was found: an archive to extract, or an extracted folder."""

    archive: Path | None
    folder: Path | None
    where: Path  # the directory it was found in (side files such as datasplits.mat)
    identity: str  # archive md5, or hash of the folder listing: the cache key
    source: str  # for logs and Dataset.source
    downloaded: bool = False

    @property
    def described(self) -> str:
        return f"archive {self.archive}" if self.archive else f"folder {self.folder}"


def resolve_data_dir(value: str | Path | None) -> Path | None:
    """The data directory from the argument, else ``BENCHMARK_DATA_DIR``; must exist."""
    origin = "--data-dir"
    if value is None:
        value, origin = os.environ.get(DATA_ENV) or None, DATA_ENV
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"data directory {path} (from {origin}) does not exist")
    return path


def keras_datasets_dir() -> Path:
    """Keras's download cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``.

    Read from the environment on each call (Keras itself fixes it at import time).
    """
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "datasets"


def _list_files(directory: Path) -> list[Path]:
    """All non-hidden files under `directory`, recursively, in a stable order."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def _find_in(directory: Path, up: Upstream) -> Found | None:
    """The upstream archive or its extracted folder in `directory`, if there.

    The archive wins when both exist: it is complete by construction, a folder may be
    a half-finished manual extraction. Also accepted: `directory` being the extracted
    folder itself, and Keras 3's ``<folder>-target/<folder>`` cache layout.
    """
    archive = directory / up.archive
    if archive.is_file():
        return Found(archive, None, directory, file_md5(archive), str(archive))
    candidates = [directory / up.folder, directory / f"{up.folder}-target" / up.folder]
    if directory.name == up.folder:
        candidates.append(directory)
    for folder in candidates:
        if folder.is_dir():
            identity = listing_hash(_list_files(folder), folder)
            return Found(None, folder, directory, identity, str(folder))
    return None


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line, for messages that must stay one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reachable(url: str, timeout_s: float = 10.0) -> None:
    """Raise OSError unless `url`'s host takes a connection. Why ask first: Keras prints
    "Downloading data from URL" before it tries, so offline every missing dataset printed
    that line above the one-line error that already names the URL."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
        pass


def download(fname: str, url: str, md5: str, keras_dir: Path) -> Path:
    """Download into the Keras cache via `keras.utils.get_file` (checks the md5).

    Keras is imported here, not at module level: it pulls in TensorFlow (seconds),
    and most loads never download.
    """
    import keras

    reachable(url)
    keras_dir.mkdir(parents=True, exist_ok=True)  # else Keras falls back to /tmp/.keras
    path = keras.utils.get_file(
        fname, origin=url, file_hash=md5, cache_subdir="datasets", cache_dir=str(keras_dir.parent)
    )
    return Path(path)


def locate(up: Upstream, data_dir: Path | None) -> Found:
    """Data dir, then Keras cache, then download; a one-line `UserError` if all fail."""
    keras_dir = keras_datasets_dir()
    searched = [d for d in (data_dir, keras_dir) if d is not None]
    for directory in searched:
        found = _find_in(directory, up)
        if found is not None:
            return found
    try:
        path = download(up.archive, up.url, up.md5, keras_dir)
    except Exception as exc:  # network, HTTP, checksum, disk: all mean "not available"
        where = " or ".join(str(d) for d in searched)
        raise UserError(
            f"{up.archive} not found in {where} and the download from {up.url} failed "
            f"({one_line(exc)}); put the archive in a directory and pass --data-dir DIR"
        ) from None
    return Found(
        path, None, path.parent, file_md5(path), f"{up.url} (downloaded to {path})", downloaded=True
    )


def side_file(found: Found, fname: str, url: str, md5: str) -> Path | None:
    """`fname` beside the found data; downloaded only right after the archive itself was.

    No network attempt for data found locally, so offline loads never wait on a timeout.
    A failed download raises (the caller decides whether the file was optional).
    """
    path = found.where / fname
    if path.is_file():
        return path
    if found.downloaded:
        return download(fname, url, md5, found.where)
    return None


def upstream_folder(found: Found, up: Upstream, cache: Path) -> Path:
    """The extracted upstream folder: the user's, or the archive extracted in the cache."""
    if found.folder is not None:
        return found.folder
    target = cache / "extracted" / f"{up.name}-{found.identity[:12]}"
    folder = safe_extract(found.archive, target) / up.folder
    if not folder.is_dir():
        raise layout_error(found, f"{up.folder}/")
    return folder


def layout_error(found: Found, missing: str) -> UserError:
    """The error for data that is not laid out as upstream publishes it."""
    return UserError(f"{found.described} has not the upstream layout: missing {missing}")
