"""The Optuna journal file read as a file: one JSON record a line, appended under Optuna's lock.

A write cut short (a crash, a kill, a full disk) leaves a torn last record. Optuna skips it
when it reads, but its next append lands on the same line, and from then on every read of
the journal fails with a traceback: every trial before the tear is intact, but unreachable.
So a torn tail is cut off before the journal is opened (the file as it was is kept beside
it), as a write-ahead log recovers: what was committed before it stays. An unreadable record
that is not the last is real damage: it is refused in one line naming the file and the line,
never replayed around, since the records after it may name trials by their position.
May import: benchmark.errors.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass

from benchmark.errors import UserError

TAIL_BYTES = 1 << 16  # more than any record Optuna writes: a trial's attrs, one value


@dataclass(frozen=True)
class Scan:
    """What a full read of the journal found: its readable records, and the first line that
    is not one (1-based; None when every line reads). `keep` bytes are the readable records
    before that line; `torn`: the bad line is the last one, a write cut short."""

    path: str
    records: int
    bad_line: int | None = None
    keep: int = 0
    torn: bool = False


def scan(path: str) -> Scan:
    """Read every line as Optuna will replay it: a JSON object with an `op_code`, ended by a
    newline. Linear in the file's size (100 trials: about 1 MB, a few ms)."""
    records, offset = 0, 0
    with open(path, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not _readable(line):
            return Scan(path, records, bad_line=number, keep=offset, torn=number == len(lines))
        records += 1
        offset += len(line)
    return Scan(path, records, keep=offset)


def _readable(line: bytes) -> bool:
    if not line.endswith(b"\n"):
        return False
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False
    return isinstance(record, dict) and "op_code" in record


def tail_torn(path: str) -> bool:
    """Whether the last record looks cut short, reading only the end of the file: the check
    every open of the journal makes, so a search starts no slower on an intact one."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return False
        with open(path, "rb") as fh:
            fh.seek(max(size - TAIL_BYTES, 0))
            tail = fh.read()
    except OSError:
        return False  # missing or unreadable: Optuna's open says so
    if not tail.endswith(b"\n"):
        return True
    return not _readable(tail[:-1].rsplit(b"\n", 1)[-1] + b"\n")


def backup(path: str) -> str:
    """A copy of the file beside it, `<name>.bak-<UTC time>`, before anything changes it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = f"{path}.bak-{stamp}"
    n = 1
    while os.path.exists(target):  # two repairs within a second: both copies kept
        target, n = f"{path}.bak-{stamp}-{n}", n + 1
    shutil.copy2(path, target)
    return target


def mend_tail(path: str) -> str | None:
    """Cut a torn last record off the journal (after a backup); the one line that says so,
    or None when the tail is whole. Done under Optuna's own journal lock, so a record
    another process is appending at this moment is never mistaken for a torn one."""
    if not tail_torn(path):
        return None
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        found = scan(path)
        if found.bad_line is None or not found.torn:
            return None  # whole after all (an append was in flight), or damage inside
        saved = backup(path)
        _truncate(path, found.keep)
    finally:
        lock.release()
    return (f"warning: Optuna journal {path}: its last record (line {found.bad_line}) was cut "
            f"short and is dropped; the file as it was is kept as {saved}; a trial it "
            "left unfinished runs again as an interrupted trial")  # fmt: skip


def _truncate(path: str, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def cut(path: str, found: Scan) -> None:
    """Keep only the readable records before the first bad line (`--repair`, after its
    backup): a prefix of the log replays as the study stood then, while replaying around a
    lost record could hand later records to the wrong trial. Under Optuna's lock."""
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        _truncate(path, found.keep)
    finally:
        lock.release()


def damage(path: str, first: str) -> UserError:
    """The one line for a journal Optuna cannot replay: the file, the line, how to go on.
    `first` is what Optuna said, shown when no line is to blame (a record of the wrong
    shape that still parses)."""
    found = scan(path)
    where = f"line {found.bad_line} is not a readable record" if found.bad_line else first
    return UserError(
        f"Optuna journal {path} is damaged ({where}); to go on, keep the records before it "
        f"and restore the later finished trials from the tracking store with `python -m "
        f"benchmark check --repair --storage {path}`, or start a new study with "
        "`--study-name NEW`"
    )
