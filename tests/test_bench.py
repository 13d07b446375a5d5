"""`python -m benchmark bench` end to end on a few synthetic steps (no timing asserted)."""

from __future__ import annotations

import argparse
import re

from benchmark.bench import NOTEBOOK, SUITE
from benchmark.bench.options import PRECISION_FAMILIES
from benchmark.cli import main


def test_bench_prints_both_pipelines_and_a_speedup(capsys):
    argv = ["bench", "--steps", "3", "--repeats", "5", "--batch-size", "8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    for name in (NOTEBOOK, SUITE):
        assert re.fullmatch(rf"{re.escape(name)}\s+\d+\s+\d+\s+\d+\s+\d+\.\d\d\s+5", rows[name]), (
            out
        )
    assert "synthetic 32x32x3 (24 images), batch 8, augmentation seed" in out
    spread, last = out.strip().splitlines()[-2:]
    assert re.fullmatch(r"speedup: \d+\.\d\d", last), last
    assert float(last.split()[1]) > 0
    assert re.fullmatch(r"per-repeat speedup: median \d+\.\d\d, range \d+\.\d\d-\d+\.\d\d "
                        r"\(5 interleaved pairs\); CPU ms/image \(a\) \d+\.\d\d, \(b\) "
                        r"\d+\.\d\d: CPU speedup \d+\.\d\d", spread), spread  # fmt: skip


def test_bench_rejects_bad_input_in_one_line(capsys):
    assert main(["bench", "--augmentation", "sepia"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown augmentation 'sepia'; known: none, seed")
    assert main(["bench", "--accuracy", "--dataset", "synthetic"]) == 2
    assert "--accuracy needs real images" in capsys.readouterr().err
    assert main(["bench", "--repeats", "3"]) == 2
    assert "error: --repeats 3: expected 5 or more" in capsys.readouterr().err


def test_bench_precision_prints_each_familys_bf16_speedup(capsys, monkeypatch):
    """`bench --precision`: float32 and mixed_bfloat16 rows and a speedup per family; on a
    CPU without bf16 instructions the output says bf16 is emulated there."""
    import benchmark.bench.precision as P

    monkeypatch.setattr(P, "cpu_flags", lambda: frozenset({"avx2"}))
    argv = ["bench", "--precision", "--steps", "1", "--repeats", "5", "--batch-size", "2",
            "--families", "cnn,resnet"]  # resnet9 takes as long as both: the same code
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "resnet9" not in out
    assert "batch 2, augmentation none" in out
    assert "CPU lacks avx512_bf16 and amx_bf16: bf16 is emulated here" in out
    for family in ("cnn", "resnet"):
        for precision in ("float32", "mixed_bfloat16"):
            assert re.search(rf"^{family} {precision}\s+\d+", out, re.M), out
        line = re.search(rf"^{family}: bf16 speedup (\d+\.\d\d) \(range .*\)$", out, re.M)
        assert line and float(line.group(1)) > 0, out
    assert P.bf16_note(frozenset({"avx512_bf16"})).endswith("bf16 runs in hardware")
    assert tuple(P.FAMILIES) == PRECISION_FAMILIES  # --families offers each benched net
    for family in P.FAMILIES:  # each one's settings are a config (the nets take seconds each)
        cfg = P.family_config(family, "float32", argparse.Namespace(
            batch_size=64, seed=0, steps_per_execution=None))  # fmt: skip
        assert cfg.model == P.FAMILIES[family].get("model", family)


def test_an_unknown_bench_family_is_one_line(capsys):
    assert main(["bench", "--precision", "--families", "cnn,resnet8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown bench family 'resnet8'" in err and "resnet9" in err
