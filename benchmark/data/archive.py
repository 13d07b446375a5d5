"""Getting bytes out of downloaded archives and pickles without trusting them.

Owns: safe tar extraction, restricted unpickling, file md5, atomic .npz writes and the
cache-directory error that names ``BENCHMARK_CACHE_DIR``. Imports: benchmark.errors only
(the bottom of the data package: every other data module may import this one).

Dataset archives come from the network or from wherever a user found them, so
everything here assumes the input may be truncated, corrupt or hostile:

* `safe_extract` refuses tar members that would land outside the target (``..``,
  absolute paths, links pointing out, device files) and extracts into a temporary
  directory that is renamed into place only when complete, so a killed process never
  leaves a half-extracted cache that later loads would trust.
* `restricted_load` unpickles CIFAR batches while allowing only the numpy globals
  needed to rebuild arrays: a pickle is a program, and a crafted one runs any code.
* `atomic_savez` writes cache files by rename, for the same reason as extraction.

Every failure is a `UserError` that says what to do about it.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import pickle
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from benchmark.errors import UserError

CACHE_ENV = "BENCHMARK_CACHE_DIR"


def _cache_write_error(directory: Path, exc: OSError) -> UserError:
    return UserError(
        f"cannot write to cache directory {directory}: {exc.strerror or exc}; "
        f"set {CACHE_ENV} to a writable directory"
    )


def make_cache_dir(directory: Path) -> Path:
    """Create a cache directory (and parents) or fail with a message naming the env var."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_write_error(directory, exc) from None
    return directory


def _refuse(archive: Path, member: tarfile.TarInfo, why: str) -> UserError:
    return UserError(f"refusing to extract {archive}: member {member.name!r} {why}")


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse anything that could write outside the target or create special files.

    `filter="data"` would catch most of this too; checking ourselves first gives a
    clear message and does not depend on the Python patch level's filter details.
    """
    name = member.name
    if name.startswith(("/", "\\")) or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise _refuse(archive, member, "has an absolute path")
    if ".." in Path(name.replace("\\", "/")).parts:
        raise _refuse(archive, member, "points outside the archive ('..')")
    plain = member.isfile() or member.isdir() or member.issym() or member.islnk()
    if member.isdev() or not plain:
        raise _refuse(archive, member, "is a device or special file")
    if member.issym() or member.islnk():
        link = member.linkname
        if posixpath.isabs(link):
            raise _refuse(archive, member, f"links to an absolute path ({link})")
        # Symlinks resolve relative to the member's directory, hard links to the root.
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, link))
        if resolved == ".." or resolved.startswith("../"):
            raise _refuse(archive, member, f"links outside the archive ({link})")


def safe_extract(archive: Path, target: Path) -> Path:
    """Extract the tar `archive` (any compression) so that it ends up exactly at `target`.

    Members are checked one by one while streaming (a single decompression pass) and
    written into a temporary directory beside `target`, on the same filesystem, which
    is renamed to `target` only after the last member. An existing `target` is thus
    always a complete earlier extraction and is returned as is; a failure removes the
    temporary directory and leaves nothing behind.
    """
    archive, target = Path(archive), Path(target)
    if target.is_dir():
        return target
    make_cache_dir(target.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise _cache_write_error(target.parent, exc) from None
    try:
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                for member in tar:
                    _check_member(archive, member)
                    tar.extract(member, tmp, filter="data")
        except OSError as exc:
            raise _extraction_os_error(archive, target.parent, tmp, exc) from None
        except tarfile.FilterError as exc:
            raise UserError(f"refusing to extract {archive}: {exc}") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise _corrupt(archive, exc) from None
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if not target.is_dir():  # else: lost a race to a concurrent extraction, fine
                raise _cache_write_error(target.parent, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extraction_os_error(archive: Path, cache: Path, tmp: Path, exc: OSError) -> UserError:
    """Tell "cannot write the cache" and "cannot read the archive" from "corrupt archive"."""
    filename = str(exc.filename or "")
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
    denied = exc.errno in (errno.EACCES, errno.EPERM) and filename.startswith(str(tmp))
    if full or denied:
        return _cache_write_error(cache, exc)
    if filename == str(archive):
        return UserError(f"cannot read archive {archive}: {exc.strerror or exc}")
    return _corrupt(archive, exc)


def _corrupt(archive: Path, exc: BaseException) -> UserError:
    return UserError(
        f"corrupt or truncated archive {archive}: {exc or type(exc).__name__}; "
        "delete it and retry / re-download"
    )


# Globals a CIFAR pickle may name: enough to rebuild numpy arrays, nothing else.
# `numpy.core` is the pre-2.0 module name found in old pickles; it maps to `numpy._core`.
# `_codecs.encode` (str -> bytes, no side effects) is how Python 3 writes `bytes` in
# protocol 2, the protocol of re-generated CIFAR-style files.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = np._core.multiarray._reconstruct
    _ALLOWED_GLOBALS[(f"{_mod}.multiarray", "scalar")] = np._core.multiarray.scalar
    _ALLOWED_GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = np._core.numeric._frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UserError(
                f"refusing to unpickle {getattr(self, '_source', '<stream>')}: "
                f"it names the global {module}.{name}, which is not a numpy array type"
            ) from None


def restricted_load(fileobj: IO[bytes]) -> Any:
    """Unpickle CIFAR-style data (dicts, lists, bytes, numpy arrays) and nothing else.

    Loads with ``encoding="bytes"`` because the upstream CIFAR pickles were written by
    Python 2 and have byte-string keys (``b"data"``). Any other global -> `UserError`.
    """
    unpickler = _RestrictedUnpickler(fileobj, encoding="bytes")
    unpickler._source = getattr(fileobj, "name", "<stream>")
    try:
        return unpickler.load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
    ) as exc:
        raise UserError(f"corrupt pickle {unpickler._source}: {exc}") from None


def file_md5(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex md5 of a file read in chunks (archives are large; md5 is what upstream publishes)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` as an uncompressed .npz at `path`, via a temp file and a rename.

    Readers either see the complete previous file, the complete new one, or none:
    never a partial cache. Uncompressed because cached loads must be fast.
    """
    path = Path(path)
    directory = make_cache_dir(path.parent)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise _cache_write_error(directory, exc) from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return path
