"""Which dtype policy a trial trains under: `--precision` as given, or `auto` resolved from
the hardware the trial runs on.

auto (measured, issue 30):
- a GPU with tensor cores (compute capability 7.0 and up): mixed_float16, as the suite has
  always done there (benchmark/train/gpu.py);
- any other GPU: float32 (float16 does not pay without tensor cores, and the GPU trains, so
  the CPU's flags do not matter);
- a CPU with AVX-512 BF16 (`avx512_bf16`) or AMX (`amx_bf16`): mixed_bfloat16, 1.6-1.75x the
  images/s of float32 on a ResNet-9-layout net on the 2-core EPYC, 1.1-1.2x on a VGG-style one;
- any other CPU: float32 (without those instructions bfloat16 is emulated, and slower).

Only the model is built under the policy (benchmark/models/build.py `build_model`): the
augmentation layers stay float32, and every family ends in a float32 softmax.

May import: benchmark.train.gpu, benchmark.train.runtime (the train stage's own helpers).
"""

from __future__ import annotations

from benchmark.train.gpu import mixed_precision_pays, on_gpu
from benchmark.train.runtime import cpu_flags

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo: bfloat16 in hardware


def auto_precision(gpu_tensor_cores: bool | None, flags: frozenset[str]) -> str:
    """What `auto` means on a machine: `gpu_tensor_cores` None when no GPU trains, else
    whether it has tensor cores; `flags` the CPU's feature flags."""
    if gpu_tensor_cores is not None:
        return "mixed_float16" if gpu_tensor_cores else "float32"
    return "mixed_bfloat16" if flags & BF16_FLAGS else "float32"


def resolve_precision(precision: str) -> str:
    """The dtype policy a trial with `--precision precision` trains under on this machine."""
    if precision != "auto":
        return precision
    return auto_precision(mixed_precision_pays() if on_gpu() else None, cpu_flags())
