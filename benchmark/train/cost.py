"""What a trial's fit cost in CPU, and whether other processes shared the machine meanwhile.

Why: on a shared machine a fit's wall time measures the neighbours as much as the model (the
same 17 Flowers configuration took 84 s in one trial and 1,116 s in another). The CPU time of
the trial's own process per training image moves far less with their load, and the load
itself, measured beside the fit, says which wall times can be trusted:

- `cpu_time_s`: CPU seconds of this process (every thread: TensorFlow's pools, tf.data)
  during the fit, validation included;
- `cpu_ms_per_image`: CPU ms per training image, the training part of each epoch after the
  first (the first carries tracing), median over those epochs;
- `host_busy_other`: the mean share of the machine's cores that other processes (and other
  virtual machines: steal time) kept busy during the fit, 0 to 1;
- `host_busy_search`: the share the trial's own search kept busy meanwhile (its process and
  the other trial processes it started: the next trial's, warming up TensorFlow), 0 to 1, left
  out of `host_busy_other`. Why apart: every search does that work beside its trials, so it is
  part of what a trial costs in a search, not a neighbour. Counted in `host_busy_other` it
  flagged most of a quiet lab's 20-second trainings `contended` (0.13-0.45 of the cores);
- tag `timing`: `clean` when the others used less than a quarter of one core on average,
  else `contended`.

May import: benchmark.metrics (the train stage's own helpers need nothing else).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time

import keras
import psutil

from benchmark import metrics as M

CLEAN_OTHER_CORES = 0.25  # other processes' mean load below this many cores: a clean timing


def host_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot, summed over cores.

    Linux counts guest time inside user and nice, so the guest fields are not added again;
    steal (time another virtual machine held our core) counts as busy: it slows us alike.
    """
    t = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(t, f, 0.0) for f in fields)


def own_cpu_s(proc: psutil.Process | None = None) -> float:
    """CPU seconds (user + system, all threads) this process has used so far."""
    t = (proc or psutil.Process()).cpu_times()
    return t.user + t.system


def family_cpu_s(root_pid: int | None) -> dict[tuple[int, float], float]:
    """CPU seconds of `root_pid` and every process under it but this one, by (pid, start
    time): a pid the system reuses is another process. {} without a root, or once it is gone."""
    if root_pid is None:
        return {}
    try:
        root = psutil.Process(root_pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    out = {}
    for proc in family:
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):  # it ended meanwhile
            out[(proc.pid, proc.create_time())] = own_cpu_s(proc)
    return out


def timing_tag(busy_other: float, cores: int) -> str:
    """`clean` when other processes kept less than CLEAN_OTHER_CORES cores busy on average."""
    return M.TIMING_CLEAN if busy_other * cores < CLEAN_OTHER_CORES else M.TIMING_CONTENDED


class CostMeter(keras.callbacks.Callback):
    """A fit callback: this process's CPU time per epoch (training part) and for the whole
    fit, and the host's busy time beside it, the trial's own search (`search_pid` and the
    processes under it) apart from the rest. Read `metrics()` and `timing` after the fit."""

    def __init__(self, n_images: int, search_pid: int | None = None) -> None:
        super().__init__()
        self.n_images = n_images
        self.search_pid = search_pid
        self.cores = psutil.cpu_count() or 1
        self.epoch_cpu: list[float] = []  # training part of each epoch, validation excluded
        self._proc = psutil.Process()
        self._train_cpu: float | None = None
        self.wall_s = self.cpu_s = self.busy_other = self.busy_search = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._family0 = family_cpu_s(self.search_pid)
        self._start = (time.perf_counter(), own_cpu_s(self._proc), host_busy_s())

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_cpu0, self._train_cpu = own_cpu_s(self._proc), None

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_cpu is None:  # validation begins: the training part of the epoch ended
            self._train_cpu = own_cpu_s(self._proc) - self._epoch_cpu0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        spent = self._train_cpu
        self.epoch_cpu.append(own_cpu_s(self._proc) - self._epoch_cpu0 if spent is None else spent)

    def on_train_end(self, logs: dict | None = None) -> None:
        wall0, cpu0, busy0 = self._start
        self.wall_s = time.perf_counter() - wall0
        self.cpu_s = own_cpu_s(self._proc) - cpu0
        busy = host_busy_s() - busy0 - self.cpu_s  # what the other processes kept busy
        family = family_cpu_s(self.search_pid)
        search = sum(s - self._family0.get(k, 0.0) for k, s in family.items())  # new: from 0
        self.busy_search = min(max(search / (self.wall_s * self.cores), 0.0), 1.0)
        self.busy_other = min(max((busy - search) / (self.wall_s * self.cores), 0.0), 1.0)

    @property
    def timing(self) -> str:
        return timing_tag(self.busy_other, self.cores)

    def metrics(self) -> dict[str, float]:
        """cpu_time_s, cpu_ms_per_image, host_busy_other and (in a search) host_busy_search;
        empty before a fit ended."""
        if not self.epoch_cpu or not self.wall_s:
            return {}
        steady = self.epoch_cpu[1:] or self.epoch_cpu  # the first epoch carries tracing
        return {
            M.CPU_TIME: self.cpu_s,
            M.CPU_MS_PER_IMAGE: 1000 * statistics.median(steady) / self.n_images,
            M.HOST_BUSY_OTHER: self.busy_other,
            **({M.HOST_BUSY_SEARCH: self.busy_search} if self.search_pid is not None else {}),
        }
